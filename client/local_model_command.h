// `magi generate --model_dir DIR ...`: the whole MAGI-1 pipeline in this process, no server:
// prompt(s) -> T5 -> AR engine -> per-chunk VAE decode -> H.264, written as a fragmented MP4
// that grows chunk by chunk (and, with --fragments_dir, one file per chunk: init.mp4 and
// chunk_NNN.m4s, each playable after init.mp4 the moment it is written).
//
//   magi generate --model_dir DIR --prompt TEXT --output FILE.mp4
//       [--chunk_prompt K=TEXT]... [--mode t2v|i2v|v2v --image FILE | --prefix_video FILE]
//       [--frames N] [--width W] [--height H] [--fps F] [--seed S] [--steps N]
//       [--fragments_dir DIR] [--create_tiny] [--quiet]
//
// --create_tiny writes the embedded tiny model set into DIR first if it is not there.
// The same runner serves jobs in magi-worker, so a local run equals a served one.
#ifndef MAGI_CLIENT_LOCAL_MODEL_COMMAND_H_
#define MAGI_CLIENT_LOCAL_MODEL_COMMAND_H_

namespace magi {

// True when argv (argv[0] = "generate" options after it) asks for the model pipeline.
bool IsLocalModelGenerate(int argc, char** argv);

// argv[0] is the first option after "generate". Returns the exit status (0 ok, 1 failed,
// 2 bad command line).
int RunLocalModelGenerate(int argc, char** argv);

}  // namespace magi

#endif  // MAGI_CLIENT_LOCAL_MODEL_COMMAND_H_
