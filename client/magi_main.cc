// magi: the command-line client. Subcommands: generate (in-process engine). The server
// subcommands (submit, watch, fetch, cancel, list) come with the gRPC API.
#include <cstdio>
#include <cstring>

#include "client/generate_command.h"

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fprintf(argc < 2 ? stderr : stdout, "usage: magi <command> [options]\n\ncommands:\n"
                 "  generate   run the engine in this process and write latent chunks (magi generate --help)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "generate")) return magi::RunGenerateCommand(argc - 2, argv + 2);
  std::fprintf(stderr, "magi: unknown command '%s' (known: generate)\n", argv[1]);
  return 2;
}
