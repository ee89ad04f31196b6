#include "executor/artifact_repository.h"

#include "base/strings.h"

namespace kiln::executor {

Result<Archive> ArchiveOf(const dag::Json& archive) {
  if (!archive.is_object()) return Archive::kTarGz;
  if (archive.contains("none")) return Archive::kNone;
  if (archive.contains("zip")) {
    return MakeError(Code::kFailedPrecondition,
                     "zip archives are not supported; use `archive: {none: {}}` or the default "
                     "tar.gz");
  }
  return Archive::kTarGz;
}

Result<std::string> CheckArtifactKey(std::string_view key) {
  auto bad = [&](std::string why) {
    return MakeError(Code::kInvalidArgument, "key " + Quote(key) + ": " + why);
  };
  if (key.empty()) return bad("a key must not be empty");
  if (key.find('\0') != std::string_view::npos) return bad("a key must not contain NUL");
  if (key.front() == '/') {
    return bad("a key must be relative (keys are paths inside the artifact repository)");
  }
  if (key.find("{{") != std::string_view::npos) {
    return bad("a key must not keep an unresolved {{...}} tag");
  }
  std::string out;
  size_t start = 0;
  while (start <= key.size()) {
    size_t slash = key.find('/', start);
    std::string_view part = key.substr(start, slash == std::string_view::npos ? key.npos : slash - start);
    if (part == "..") {
      return bad("\"..\" is not allowed in a key (keys are paths inside the artifact repository)");
    }
    if (part == ".") return bad("\".\" is not allowed in a key");
    if (!part.empty()) {
      if (!out.empty()) out += '/';
      out += part;
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (out.empty()) return bad("a key must name something below the repository's root");
  return out;
}

}  // namespace kiln::executor
