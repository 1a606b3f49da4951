// magi: the command-line client. `generate` runs the engine in this process; submit,
// watch, get, cancel, prompt, list and `generate --server ADDR` talk to magi-server.
#include <cstdio>
#include <cstring>

#include "client/generate_command.h"
#include "client/local_model_command.h"
#include "client/remote_command.h"

int main(int argc, char** argv) {
  if (magi::IsRemoteCommand(argc, argv)) return magi::RunRemoteCommand(argc, argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fprintf(argc < 2 ? stderr : stdout, "usage: magi <command> [options]\n\ncommands:\n"
                 "  generate   --model_dir DIR --prompt TEXT --output FILE.mp4: the whole pipeline in this process;\n"
                 "             --config/--weights/--captions: the engine only, latent chunks (magi generate --help);\n"
                 "             with --server ADDR, generate on magi-server and stream the MP4 as chunks arrive\n"
                 "  submit     submit a job to magi-server       watch   follow a job's progress\n"
                 "  get        job state, or its video           cancel  cancel a job\n"
                 "  prompt     change a running job's prompt    list    list jobs (paged, by state)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "generate")) {
    if (magi::IsLocalModelGenerate(argc - 2, argv + 2)) return magi::RunLocalModelGenerate(argc - 2, argv + 2);
    return magi::RunGenerateCommand(argc - 2, argv + 2);
  }
  std::fprintf(stderr, "magi: unknown command '%s' (known: generate, submit, watch, get, cancel, prompt, list)\n", argv[1]);
  return 2;
}
