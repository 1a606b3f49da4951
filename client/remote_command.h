// The `magi` subcommands that talk to a magi-server over magi.v1.VideoGeneration:
//
//   magi submit   --server ADDR --prompt TEXT [request flags] [--json]   -> prints the job id
//   magi watch    JOB_ID [--from-chunk K] [--output FILE] [--json]      -> progress, chunks
//   magi get      JOB_ID [--output FILE] [--json]                       -> job state / video
//   magi cancel   JOB_ID [--json]
//   magi list     [--state STATE] [--page-size N] [--page-token T] [--json]
//   magi generate --server ADDR --prompt TEXT --output FILE [...]        -> MP4 grows per chunk
//
// --server defaults to $MAGI_SERVER, then 127.0.0.1:50051. On a terminal, watch/generate
// draw a progress bar on stderr; otherwise they print one line per chunk. --json prints
// one JSON object per line on stdout for scripts (chunk bytes are summarised, not dumped).
// Exit status: 0 success, 1 the job or the RPC failed, 2 bad command line.
//
// Thread safety: a command runs on the calling thread.
#ifndef MAGI_CLIENT_REMOTE_COMMAND_H_
#define MAGI_CLIENT_REMOTE_COMMAND_H_

namespace magi {

// True for submit / watch / get / cancel / list, and for generate with --server.
// argv[1] is the subcommand.
bool IsRemoteCommand(int argc, char** argv);

// Runs the subcommand argv[1] with its arguments argv[2..]; returns the exit status.
int RunRemoteCommand(int argc, char** argv);

}  // namespace magi

#endif  // MAGI_CLIENT_REMOTE_COMMAND_H_
