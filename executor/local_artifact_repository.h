// LocalArtifactRepository: the ArtifactRepository in a directory of this machine (for `kiln
// run`, <data dir>/artifacts). Layout:
//   <root>/<sha256 hex>      content-addressed bytes (a directory's tar.gz), written once
//   <root>/keys/<key>        key-only artifacts: one file per object, a prefix is a directory
//   <root>/.incoming-*       files being written; renamed into place when complete
// So a key cannot be both an object and a prefix here ("a" and "a/b"), which S3 allows; PutKey
// says so when it happens.
// Thread-safety: thread-safe, and several processes may share one root, also from different
// machines or pods on a shared volume (where pids repeat): every file is written under a unique
// temporary name (pid, a random token, a counter) and renamed into place.
#ifndef KILN_EXECUTOR_LOCAL_ARTIFACT_REPOSITORY_H_
#define KILN_EXECUTOR_LOCAL_ARTIFACT_REPOSITORY_H_

#include <atomic>
#include <string>
#include <string_view>

#include "executor/artifact_repository.h"

namespace kiln::executor {

class LocalArtifactRepository : public ArtifactRepository {
 public:
  // `root` is created when the first artifact is stored.
  explicit LocalArtifactRepository(std::string root);

  Result<scheduler::ArtifactRef> Put(const std::string& path) override;
  Result<void> Get(const scheduler::ArtifactRef& ref, const std::string& path) override;
  Result<void> PutKey(std::string_view key, const std::string& path, Archive archive) override;
  Result<void> GetKey(std::string_view key, const std::string& path, Archive archive) override;

  const std::string& root() const { return root_; }
  // Where the object `key` (already checked by CheckArtifactKey) is kept: <root>/keys/<key>.
  std::string KeyPath(const std::string& key) const { return root_ + "/keys/" + key; }

 private:
  // A fresh temporary path under `dir` (which must be on the same file system as the target).
  std::string TempPath(const std::string& dir);
  // Copies `from` to `to` through a temporary file beside `to`, then renames it into place.
  Result<void> WriteObject(const std::string& from, const std::string& to);

  std::string root_;
  std::string token_;  // "<pid>-<64 random bits>": part of every temporary name
  std::atomic<uint64_t> counter_{0};
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_LOCAL_ARTIFACT_REPOSITORY_H_
