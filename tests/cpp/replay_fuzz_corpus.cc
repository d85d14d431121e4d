// Replays fuzz corpora through a libFuzzer target without libFuzzer, so the
// seed corpora (and any crash reproducers added to them) run with the normal
// test suite, sanitizers included. Link with exactly one fuzz target:
//
//   g++ -std=c++20 -O1 -g -fsanitize=address,undefined -Isrc
//     tests/cpp/replay_fuzz_corpus.cc fuzz/fuzz_parser.cc src/core/parser.cc -o /tmp/replay_parser
//   /tmp/replay_parser fuzz/corpus/parser
//
// Each argument is a directory (every regular file in it, recursively, sorted
// by path) or a single file. Each input is copied into an exactly sized heap
// block, like libFuzzer does. Exits nonzero if an argument is missing or no
// input was found; a failing input aborts inside the target (after its path
// was printed).

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

namespace {

bool read_file(const fs::path& path, std::vector<uint8_t>* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      for (const auto& entry : fs::recursive_directory_iterator(arg, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      if (ec) {
        std::fprintf(stderr, "error: cannot list %s: %s\n", argv[i], ec.message().c_str());
        return 1;
      }
    } else if (fs::is_regular_file(arg, ec)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "error: %s is neither a file nor a directory\n", argv[i]);
      return 1;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "error: no corpus files found\n");
    return 1;
  }
  for (const auto& path : files) {
    std::vector<uint8_t> bytes;
    if (!read_file(path, &bytes)) {
      std::fprintf(stderr, "error: cannot read %s\n", path.c_str());
      return 1;
    }
    std::fprintf(stderr, "%s\n", path.c_str());  // printed first, so a crash names its input
    // An exactly sized allocation: ASan catches a read one past the end.
    const auto copy = std::make_unique<uint8_t[]>(bytes.size() + (bytes.empty() ? 1 : 0));
    std::copy(bytes.begin(), bytes.end(), copy.get());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  }
  std::fprintf(stderr, "replayed %zu inputs\n", files.size());
  return 0;
}
