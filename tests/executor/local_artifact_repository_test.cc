#include "executor/local_artifact_repository.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/executor/test_util.h"

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::TempDir;

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("local repository: a file is stored by its sha256 and placed back", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "out.txt", "hello\n");
  auto ref = repo.Put(d / "out.txt");
  REQUIRE(ref);
  CHECK(ref->sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
  CHECK(ref->size == 6);
  CHECK_FALSE(ref->archived);
  CHECK(ref->location == d / "artifacts/" + ref->sha256);  // the layout existing data has
  auto again = repo.Put(d / "out.txt");
  REQUIRE(again);
  CHECK(*again == *ref);

  REQUIRE(repo.Get(*ref, d / "in/deep/file.txt"));
  CHECK(ReadFile(d / "in/deep/file.txt") == "hello\n");
}

TEST_CASE("local repository: a directory is stored as tar.gz and unpacked", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "dir/a.txt", "a");
  Write(d / "dir/sub/b.txt", "b");
  auto ref = repo.Put(d / "dir");
  REQUIRE(ref);
  CHECK(ref->archived);
  REQUIRE(repo.Get(*ref, d / "placed"));
  CHECK(ReadFile(d / "placed/a.txt") == "a");
  CHECK(ReadFile(d / "placed/sub/b.txt") == "b");
}

TEST_CASE("local repository: a corrupted blob is refused with both digests", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "out.txt", "hello\n");
  auto ref = repo.Put(d / "out.txt");
  REQUIRE(ref);
  Write(ref->location, "jello\n");
  auto got = repo.Get(*ref, d / "in.txt");
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Code::kFailedPrecondition);
  CHECK(got.error().message() ==
        "artifact " + ref->location +
            " is corrupt: its sha256 is 8b128914480c08c1d7a9c8a8ef78487f4f21cbc802a8134aa3850c9501571a15"
            ", expected " + ref->sha256 + " (the file changed after it was stored)");
  CHECK_FALSE(fs::exists(d / "in.txt"));

  fs::remove(ref->location);
  got = repo.Get(*ref, d / "in.txt");
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Code::kNotFound);
}

TEST_CASE("local repository: raw artifacts are written as given", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  scheduler::ArtifactRef raw;
  raw.raw = "inline";
  raw.raw_given = true;
  REQUIRE(repo.Get(raw, d / "x/raw.txt"));
  CHECK(ReadFile(d / "x/raw.txt") == "inline");
}

TEST_CASE("local repository: keys without an archive hold the bytes as they are", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "f.json", "{\"foo\": 1}");
  REQUIRE(repo.PutKey("wf/results/0.json", d / "f.json", Archive::kNone));
  CHECK(ReadFile(d / "artifacts/keys/wf/results/0.json") == "{\"foo\": 1}");
  // Either archive setting reads a plain object back as it is.
  REQUIRE(repo.GetKey("wf/results/0.json", d / "a.json", Archive::kTarGz));
  CHECK(ReadFile(d / "a.json") == "{\"foo\": 1}");
  REQUIRE(repo.GetKey("wf/results/0.json", d / "b.json", Archive::kNone));
  CHECK(ReadFile(d / "b.json") == "{\"foo\": 1}");

  // Put again: replaced.
  Write(d / "f.json", "{\"foo\": 2}");
  REQUIRE(repo.PutKey("wf/results/0.json", d / "f.json", Archive::kNone));
  REQUIRE(repo.GetKey("wf/results/0.json", d / "c.json", Archive::kNone));
  CHECK(ReadFile(d / "c.json") == "{\"foo\": 2}");
}

TEST_CASE("local repository: a key with the default archive holds a tar.gz, unpacked as Argo does",
          "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "file", "hello");
  REQUIRE(repo.PutKey("my-file", d / "file", Archive::kTarGz));
  std::string stored = ReadFile(d / "artifacts/keys/my-file");
  REQUIRE(stored.size() > 2);
  CHECK(static_cast<unsigned char>(stored[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(stored[1]) == 0x8b);
  // A single file inside: it becomes the destination itself.
  REQUIRE(repo.GetKey("my-file", d / "got/file", Archive::kTarGz));
  CHECK(ReadFile(d / "got/file") == "hello");
  // archive none on the input: the tar.gz is left as it is.
  REQUIRE(repo.GetKey("my-file", d / "raw.tgz", Archive::kNone));
  CHECK(ReadFile(d / "raw.tgz") == stored);

  // A directory: unpacked as the directory.
  Write(d / "dir/a.txt", "a");
  Write(d / "dir/sub/b.txt", "b");
  REQUIRE(repo.PutKey("trees/dir.tgz", d / "dir", Archive::kTarGz));
  REQUIRE(repo.GetKey("trees/dir.tgz", d / "placed", Archive::kTarGz));
  CHECK(ReadFile(d / "placed/a.txt") == "a");
  CHECK(ReadFile(d / "placed/sub/b.txt") == "b");
}

TEST_CASE("local repository: a prefix comes back as a directory of every object under it",
          "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  // One step writes a directory under a prefix, one object per file ...
  Write(d / "parts/0.json", "zero");
  Write(d / "parts/1.json", "one");
  Write(d / "parts/nested/2.json", "two");
  REQUIRE(repo.PutKey("wf/parts/", d / "parts", Archive::kNone));
  // ... which later steps read one by one,
  REQUIRE(repo.GetKey("wf/parts/1.json", d / "in/part.json", Archive::kTarGz));
  CHECK(ReadFile(d / "in/part.json") == "one");
  // and several steps write objects that one step reads as a directory, with or without '/'.
  Write(d / "r.json", "r0");
  REQUIRE(repo.PutKey("wf/results/0.json", d / "r.json", Archive::kNone));
  Write(d / "r.json", "r1");
  REQUIRE(repo.PutKey("wf/results/1.json", d / "r.json", Archive::kNone));
  REQUIRE(repo.GetKey("wf/results", d / "all", Archive::kTarGz));
  CHECK(ReadFile(d / "all/0.json") == "r0");
  CHECK(ReadFile(d / "all/1.json") == "r1");
  REQUIRE(repo.GetKey("wf/parts/", d / "parts-again", Archive::kNone));
  CHECK(ReadFile(d / "parts-again/nested/2.json") == "two");

  // Through an ArtifactRef that only names a key.
  scheduler::ArtifactRef ref;
  ref.key = "wf/results";
  ref.archived = true;
  REQUIRE(repo.Get(ref, d / "via-ref"));
  CHECK(ReadFile(d / "via-ref/1.json") == "r1");
}

TEST_CASE("local repository: key errors say which key and why", "[executor][artifacts]") {
  TempDir d;
  LocalArtifactRepository repo(d / "artifacts");
  Write(d / "f", "x");
  auto check = [&](const std::string& key, const std::string& message) {
    INFO(key);
    auto put = repo.PutKey(key, d / "f", Archive::kNone);
    REQUIRE_FALSE(put);
    CHECK(put.error().message() == message);
  };
  check("../escape", "key \"../escape\": \"..\" is not allowed in a key (keys are paths inside the "
                     "artifact repository)");
  check("a/../../b", "key \"a/../../b\": \"..\" is not allowed in a key (keys are paths inside the "
                     "artifact repository)");
  check("/etc/passwd", "key \"/etc/passwd\": a key must be relative (keys are paths inside the "
                       "artifact repository)");
  check("", "key \"\": a key must not be empty");
  check("wf/{{item}}.json", "key \"wf/{{item}}.json\": a key must not keep an unresolved {{...}} tag");
  check("dir/", "key \"dir/\": a key ending in '/' names a prefix: only a directory with "
                "`archive: {none: {}}` is stored under one (one object per file)");
  auto get = repo.GetKey("../x", d / "out", Archive::kNone);
  REQUIRE_FALSE(get);
  CHECK(get.error().code() == Code::kInvalidArgument);
  CHECK_FALSE(fs::exists(d / "x"));

  auto missing = repo.GetKey("nothing/here", d / "out", Archive::kNone);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Code::kNotFound);
  CHECK(missing.error().message() == "key \"nothing/here\" is not in the artifact repository (no object at "
                                     "it or under it in " + d / "artifacts/keys/)");

  // An object cannot also be a prefix here.
  REQUIRE(repo.PutKey("obj", d / "f", Archive::kNone));
  auto under = repo.PutKey("obj/inner", d / "f", Archive::kNone);
  REQUIRE_FALSE(under);
  CHECK(under.error().message() == "key \"obj/inner\": obj is an object, so it cannot hold others in this repository");
  REQUIRE(repo.PutKey("pre/inner", d / "f", Archive::kNone));
  auto over = repo.PutKey("pre", d / "f", Archive::kNone);
  REQUIRE_FALSE(over);
  CHECK(over.error().message() ==
        "key \"pre\": objects are stored under it, so it cannot be one object in this repository");
}

TEST_CASE("artifact archive settings map to Archive", "[executor][artifacts]") {
  CHECK(*ArchiveOf(nullptr) == Archive::kTarGz);
  CHECK(*ArchiveOf(dag::Json{{"none", dag::Json::object()}}) == Archive::kNone);
  CHECK(*ArchiveOf(dag::Json{{"tar", {{"compressionLevel", 9}}}}) == Archive::kTarGz);
  auto zip = ArchiveOf(dag::Json{{"zip", dag::Json::object()}});
  REQUIRE_FALSE(zip);
  CHECK(zip.error().code() == Code::kFailedPrecondition);
  CHECK(*CheckArtifactKey("a//b/") == "a/b");
}

}  // namespace kiln::executor
