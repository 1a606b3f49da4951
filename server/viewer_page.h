// The browser viewer of the API listener (GET / and GET /viewer): one self-contained HTML page
// (no build step, no CDN) with a prompt form that opens a realtime session
// (/v1/realtime/video, api/realtime_protocol.h) and plays the chunks as they arrive through
// Media Source Extensions: the init segment and each chunk's fMP4 fragment are appended to
// one SourceBuffer, so the <video> grows chunk by chunk while the job runs.
//
// `/?prompt=...&seconds=...&size=WxH&fps=...&seed=...&steps=...` fills the form and starts at
// once (a link shares a generation; the e2e test drives the page this way). The page exposes
// its state as window.magiViewer {videoId, chunks, bufferedEnds, done, error} for tests.
#ifndef MAGI_SERVER_VIEWER_PAGE_H_
#define MAGI_SERVER_VIEWER_PAGE_H_

#include <string_view>

namespace magi {

// The page's HTML (UTF-8).
std::string_view ViewerPageHtml();

}  // namespace magi

#endif  // MAGI_SERVER_VIEWER_PAGE_H_
