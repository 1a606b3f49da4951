// `magi generate`: the engine in-process, no server (for scripts and debugging). Reads a
// config, DiT weights and caption embeddings, runs the AR engine and writes each latent
// chunk to its own safetensors file the moment it is clean, with a progress bar on a TTY
// and plain lines otherwise.
#ifndef MAGI_CLIENT_GENERATE_COMMAND_H_
#define MAGI_CLIENT_GENERATE_COMMAND_H_

namespace magi {

// argv holds the arguments after "generate". Returns the process exit code: 0 done,
// 1 runtime error (message on stderr), 2 bad usage.
int RunGenerateCommand(int argc, char** argv);

}  // namespace magi

#endif  // MAGI_CLIENT_GENERATE_COMMAND_H_
