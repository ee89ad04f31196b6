// ArtifactRepository: where the executor keeps artifacts between steps. Output artifacts are
// stored content-addressed (an ArtifactRef names their sha256) and, for Argo's key-only artifacts
// (`s3: {key: ...}` with no bucket: the default artifact repository), under their key as well;
// input artifacts are materialised from either. LocalArtifactRepository
// (executor/local_artifact_repository.h) keeps them in a directory; a shared-volume one for the
// Kubernetes executor, and S3, implement the same interface.
// Thread-safety: implementations say; the interface puts no requirement on callers beyond theirs.
#ifndef KILN_EXECUTOR_ARTIFACT_REPOSITORY_H_
#define KILN_EXECUTOR_ARTIFACT_REPOSITORY_H_

#include <string>
#include <string_view>

#include "base/error.h"
#include "dag/spec.h"
#include "scheduler/state.h"

namespace kiln::executor {

// How an artifact is packed under a key: Argo's `archive` field. kTarGz (the default, also for
// `tar: {}`) stores one tar.gz holding the file or directory under its base name; kNone
// (`none: {}`) stores a file as it is and a directory as one object per file under the key.
enum class Archive { kTarGz, kNone };

// The Archive an artifact's `archive` field asks for. Errors: kFailedPrecondition for `zip`,
// which kiln does not write.
Result<Archive> ArchiveOf(const dag::Json& archive);

// Checks that `key` is a relative path inside a repository: not empty, not absolute, no "." or
// ".." components, no NUL. A trailing '/' is allowed (it names a prefix); repeated '/' are folded.
// Returns the key with repeated and trailing '/' removed. Errors: kInvalidArgument naming the key
// and what is wrong, e.g. `key "../x": ".." is not allowed in a key (keys are paths inside the
// artifact repository)`.
Result<std::string> CheckArtifactKey(std::string_view key);

class ArtifactRepository {
 public:
  virtual ~ArtifactRepository() = default;

  // Stores the file or directory at `path` content-addressed: a file as it is, a directory as a
  // tar.gz of its contents (ArtifactRef::archived). Returns the ref: sha256 and size of the
  // stored bytes, and their location in the repository. Storing the same bytes twice is cheap
  // and gives the same ref. Errors: kNotFound when `path` does not exist; kUnavailable when the
  // repository cannot be written; kInternal when tar fails.
  virtual Result<scheduler::ArtifactRef> Put(const std::string& path) = 0;

  // Materialises `ref` at `path` (parent directories are created): a raw artifact's content, a
  // key-only ref (empty sha256, key set) through GetKey with kTarGz when `ref.archived` else
  // kNone, or the content-addressed bytes after checking their sha256 (an archived ref unpacked
  // into the directory `path`). Errors: kNotFound when the artifact is not in the repository;
  // kFailedPrecondition when the stored bytes do not match ref.sha256 (the message names the
  // file and both digests); GetKey's errors.
  virtual Result<void> Get(const scheduler::ArtifactRef& ref, const std::string& path) = 0;

  // Stores the file or directory at `path` under `key`, replacing what the key held, packed as
  // `archive` says. With kNone a directory becomes one object per file (regular files only)
  // under the prefix `key`; a key ending in '/' names a prefix and is only for that.
  // Errors: CheckArtifactKey's; kNotFound when `path` does not exist; kInvalidArgument when the
  // key cannot hold this (a prefix key for one object, an object where a prefix is, or the
  // reverse); kUnavailable when the repository cannot be written.
  virtual Result<void> PutKey(std::string_view key, const std::string& path, Archive archive) = 0;

  // Materialises `key` at `path`. A key that is a prefix of other objects (as S3 lists them)
  // becomes a directory holding each object under it at its relative path. One object: with
  // kTarGz, a tar.gz is unpacked as Argo does (a single entry becomes `path` itself, several
  // become the directory `path`) and anything else is copied as it is; with kNone it is copied as
  // it is. Errors: CheckArtifactKey's; kNotFound when nothing is stored at or under the key;
  // kUnavailable when `path` cannot be written.
  virtual Result<void> GetKey(std::string_view key, const std::string& path, Archive archive) = 0;
};

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_ARTIFACT_REPOSITORY_H_
