#include "executor/local_artifact_repository.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "base/strings.h"

namespace kiln::executor {

namespace fs = std::filesystem;

namespace {

extern "C" char** environ;

// Runs `tar` with `args`, waiting for it; its output goes to /dev/null. Errors: kInternal.
Result<void> Tar(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string tar = "tar";
  argv.push_back(tar.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  int spawned = posix_spawnp(&pid, "tar", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return MakeError(Code::kInternal, "cannot run tar (is it installed?)");
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return MakeError(Code::kInternal, "tar " + (args.empty() ? std::string() : args[0]) + " failed");
  }
  return {};
}

Result<std::string> Sha256File(const std::string& path, int64_t* size) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, "cannot read " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  *size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n > 0) {
      EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
      *size += n;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

bool IsGzip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  return in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// Moves the file or directory `from` to `to`; where a rename cannot (`to` is a directory that
// holds something, another file system), copies it over what is there.
Result<void> MoveInto(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_directories(fs::path(to).parent_path(), ec);
  fs::rename(from, to, ec);
  if (!ec) return {};
  ec.clear();
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
  if (ec) return MakeError(Code::kUnavailable, "cannot write " + to + ": " + ec.message());
  return {};
}

}  // namespace

LocalArtifactRepository::LocalArtifactRepository(std::string root) : root_(std::move(root)) {
  // The pid alone does not tell writers apart on a shared volume: every pod's agent may be
  // PID 1. A random token per repository object does.
  std::random_device random;
  char token[17];
  std::snprintf(token, sizeof token, "%08x%08x", random(), random());
  token_ = std::to_string(::getpid()) + "-" + token;
}

std::string LocalArtifactRepository::TempPath(const std::string& dir) {
  return dir + "/.incoming-" + token_ + "-" + std::to_string(counter_++);
}

Result<void> LocalArtifactRepository::WriteObject(const std::string& from, const std::string& to) {
  std::error_code ec;
  if (fs::is_directory(to, ec)) {
    return MakeError(Code::kInvalidArgument,
                     "objects are stored under it, so it cannot be one object in this repository");
  }
  fs::create_directories(fs::path(to).parent_path(), ec);
  if (ec) {
    for (fs::path p = fs::path(to).parent_path(); p.string().size() > root_.size(); p = p.parent_path()) {
      if (fs::is_regular_file(p)) {
        return MakeError(Code::kInvalidArgument,
                         p.string().substr(KeyPath("").size()) +
                             " is an object, so it cannot hold others in this repository");
      }
    }
    return MakeError(Code::kUnavailable, "cannot create " + fs::path(to).parent_path().string() +
                                             ": " + ec.message());
  }
  std::string tmp = TempPath(root_);
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, to, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    return MakeError(Code::kUnavailable, "cannot write " + to + ": " + ec.message());
  }
  return {};
}

Result<scheduler::ArtifactRef> LocalArtifactRepository::Put(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return MakeError(Code::kNotFound, path + " does not exist");
  fs::create_directories(root_, ec);
  if (ec) return MakeError(Code::kUnavailable, "cannot create " + root_ + ": " + ec.message());
  scheduler::ArtifactRef ref;
  std::string file = path;
  std::string archive;
  if (fs::is_directory(path, ec)) {
    // One blob must hold a directory: Argo's default archive, tar.gz.
    archive = TempPath(root_);
    if (auto ok = Tar({"-czf", archive, "-C", path, "."}); !ok) {
      fs::remove(archive, ec);
      return std::unexpected(ok.error());
    }
    file = archive;
    ref.archived = true;
  }
  auto hex = Sha256File(file, &ref.size);
  if (!hex) return std::unexpected(hex.error());
  ref.sha256 = *hex;
  ref.location = root_ + "/" + *hex;
  Result<void> stored;
  if (!fs::exists(ref.location, ec)) {
    if (!archive.empty()) {
      fs::rename(archive, ref.location, ec);
      if (ec) stored = MakeError(Code::kUnavailable, "cannot store artifact in " + root_ + ": " + ec.message());
    } else {
      stored = WriteObject(file, ref.location);
    }
  }
  if (!archive.empty()) fs::remove(archive, ec);
  if (!stored) return std::unexpected(stored.error());
  return ref;
}

Result<void> LocalArtifactRepository::Get(const scheduler::ArtifactRef& ref, const std::string& path) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ref.raw_given) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << ref.raw;
    if (!out) return MakeError(Code::kUnavailable, "cannot write " + path);
    return {};
  }
  if (ref.sha256.empty() && !ref.key.empty()) {
    return GetKey(ref.key, path, ref.archived ? Archive::kTarGz : Archive::kNone);
  }
  std::string blob = ref.location.empty() ? root_ + "/" + ref.sha256 : ref.location;
  if (ref.sha256.empty() || !fs::is_regular_file(blob, ec)) {
    return MakeError(Code::kNotFound, "artifact " + (ref.sha256.empty() ? blob : ref.sha256) +
                                          " is not in the artifact repository (no file " + blob + ")");
  }
  int64_t size = 0;
  auto hex = Sha256File(blob, &size);
  if (!hex) return std::unexpected(hex.error());
  if (*hex != ref.sha256) {
    return MakeError(Code::kFailedPrecondition,
                     "artifact " + blob + " is corrupt: its sha256 is " + *hex + ", expected " +
                         ref.sha256 + " (the file changed after it was stored)");
  }
  if (ref.archived) {
    fs::create_directories(path, ec);
    if (auto ok = Tar({"-xzf", blob, "-C", path}); !ok) {
      return MakeError(Code::kInternal, "cannot unpack " + blob + " into " + path);
    }
    return {};
  }
  fs::copy_file(blob, path, fs::copy_options::overwrite_existing, ec);
  if (ec) return MakeError(Code::kUnavailable, "cannot copy " + blob + " to " + path + ": " + ec.message());
  return {};
}

Result<void> LocalArtifactRepository::PutKey(std::string_view key, const std::string& path,
                                             Archive archive) {
  auto checked = CheckArtifactKey(key);
  if (!checked) return std::unexpected(checked.error());
  auto fail = [&](const Error& e) {
    return MakeError(e.code(), "key " + Quote(key) + ": " + e.message());
  };
  const bool prefix = key.back() == '/';
  const std::string target = KeyPath(*checked);
  std::error_code ec;
  if (!fs::exists(path, ec)) return fail(Error(Code::kNotFound, path + " does not exist"));
  if (archive == Archive::kNone && fs::is_directory(path, ec)) {
    // As Argo's S3 driver: one object per file, at its path relative to the directory.
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      std::error_code entry_ec;
      if (it->symlink_status(entry_ec).type() != fs::file_type::regular) continue;
      std::string rel = it->path().lexically_relative(path).string();
      if (auto ok = WriteObject(it->path().string(), target + "/" + rel); !ok) {
        return MakeError(ok.error().code(),
                         "key " + Quote(*checked + "/" + rel) + ": " + ok.error().message());
      }
    }
    if (ec) return fail(Error(Code::kUnavailable, "cannot read " + path + ": " + ec.message()));
    return {};
  }
  if (prefix) {
    return fail(Error(Code::kInvalidArgument,
                      "a key ending in '/' names a prefix: only a directory with "
                      "`archive: {none: {}}` is stored under one (one object per file)"));
  }
  if (archive == Archive::kNone) {
    if (auto ok = WriteObject(path, target); !ok) return fail(ok.error());
    return {};
  }
  // tar.gz of the file or directory under its base name, as Argo archives it.
  fs::create_directories(root_, ec);
  std::string tgz = TempPath(root_);
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (auto ok = Tar({"-czf", tgz, "-C", p.parent_path().string(), p.filename().string()}); !ok) {
    fs::remove(tgz, ec);
    return fail(ok.error());
  }
  Result<void> ok = WriteObject(tgz, target);
  fs::remove(tgz, ec);
  if (!ok) return fail(ok.error());
  return {};
}

Result<void> LocalArtifactRepository::GetKey(std::string_view key, const std::string& path,
                                             Archive archive) {
  auto checked = CheckArtifactKey(key);
  if (!checked) return std::unexpected(checked.error());
  const std::string object = KeyPath(*checked);
  std::error_code ec;
  fs::file_status st = fs::status(object, ec);
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (fs::is_directory(st)) {
    // A prefix: every object under it, at its relative path.
    fs::create_directories(path, ec);
    fs::copy(object, path, fs::copy_options::recursive | fs::copy_options::overwrite_existing, ec);
    if (ec) return MakeError(Code::kUnavailable, "key " + Quote(key) + ": cannot copy it to " + path + ": " + ec.message());
    return {};
  }
  if (!fs::is_regular_file(st)) {
    return MakeError(Code::kNotFound, "key " + Quote(key) +
                                          " is not in the artifact repository (no object at it or "
                                          "under it in " + KeyPath("") + ")");
  }
  if (archive == Archive::kTarGz && IsGzip(object)) {
    // Argo's untar: unpack beside the destination; a single entry becomes the destination,
    // several become the directory.
    std::string tmp = path + ".kiln-unpack-" + token_ + "-" + std::to_string(counter_++);
    fs::create_directories(tmp, ec);
    if (Tar({"-xzf", object, "-C", tmp})) {
      std::vector<fs::path> entries;
      for (const auto& e : fs::directory_iterator(tmp, ec)) entries.push_back(e.path());
      Result<void> moved = MoveInto(entries.size() == 1 ? entries[0].string() : tmp, path);
      fs::remove_all(tmp, ec);
      if (!moved) return MakeError(moved.error().code(), "key " + Quote(key) + ": " + moved.error().message());
      return {};
    }
    fs::remove_all(tmp, ec);  // gzip but not a tarball: copied as it is, as Argo does
  }
  fs::copy_file(object, path, fs::copy_options::overwrite_existing, ec);
  if (ec) return MakeError(Code::kUnavailable, "key " + Quote(key) + ": cannot copy it to " + path + ": " + ec.message());
  return {};
}

}  // namespace kiln::executor
