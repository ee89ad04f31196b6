// What only SqliteStore does: files it refuses, data directories it cannot use, WAL, SQLite's
// lock. The behaviour every store shares is tested against SQLite (and PostgreSQL) in
// store_test.cc.
#include "store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "store/internal/schema.h"
#include "tests/store/backends.h"

namespace kiln::store::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string Garbage(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

// Runs SQL on the file behind the store's back, as another program would.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  INFO(message);
  REQUIRE(rc == SQLITE_OK);
}

std::unique_ptr<SqliteStore> OpenOrFail(const std::string& path,
                                        const SqliteOptions& options = {}) {
  auto store = SqliteStore::Open(path, options);
  if (!store) FAIL(store.error().ToString());
  return std::move(*store);
}

TEST_CASE("sqlite store keeps the file in WAL mode at the newest schema version", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  { OpenOrFail(path); }
  auto store = OpenOrFail(path);
  CHECK(store->SchemaVersion().value() == internal::kLatestSchemaVersion);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) == "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_CASE("sqlite store refuses a file that is not a kiln database and leaves it as it was",
          "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  std::string why;

  SECTION("4 KiB of garbage") {
    WriteBytes(path, Garbage(4096, 1));
    why = "file is not a database";
  }
  SECTION("a SQLite header followed by garbage") {
    WriteBytes(path, std::string("SQLite format 3\0", 16) + Garbage(4096 - 16, 2));
    why = "file is not a database";
  }
  SECTION("a text file shorter than a header") {
    WriteBytes(path, "hello\n");
    why = "file is not a database";
  }
  SECTION("another program's SQLite database") {
    RawExec(path,
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT);"
            "INSERT INTO accounts (owner) VALUES ('alice');");
    why = "a SQLite database without kiln's schema_migrations table";
  }

  std::string before = ReadBytes(path);
  REQUIRE_FALSE(before.empty());
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(store.error().message() ==
        path + " is not a kiln database (" + why + "); move it aside or pass another --data-dir");
  CHECK(ReadBytes(path) == before);
  CHECK_FALSE(fs::exists(path + "-wal"));
  CHECK_FALSE(fs::exists(path + "-journal"));
}

TEST_CASE("sqlite store explains a data directory it cannot use", "[store]") {
  TempDir dir;

  SECTION("missing directory") {
    std::string path = dir.File("missing/kiln.db");
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot create database " + path + ": directory " +
                                         dir.File("missing") +
                                         " does not exist; create it or pass another --data-dir");
  }

  SECTION("a regular file where the directory should be (fails for root too)") {
    WriteBytes(dir.File("file.txt"), "not a directory\n");
    std::string path = dir.File("file.txt/kiln.db");
    auto store = SqliteStore::Open(path);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot create database " + path + ": " +
                                         dir.File("file.txt") +
                                         " is not a directory; pass another --data-dir");
    CHECK(ReadBytes(dir.File("file.txt")) == "not a directory\n");
  }

  SECTION("the database path is a directory") {
    fs::create_directory(dir.File("kiln.db"));
    auto store = SqliteStore::Open(dir.File("kiln.db"));
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot open database " + dir.File("kiln.db") +
                                         ": it is a directory; pass another --data-dir");
  }

  SECTION("a missing file when asked not to create one") {
    std::string path = dir.File("kiln.db");
    SqliteOptions options;
    options.create_if_missing = false;
    auto store = SqliteStore::Open(path, options);
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kNotFound);
    CHECK_FALSE(fs::exists(path));
  }

  SECTION("a directory without write permission") {
    if (geteuid() == 0) {
      WARN("running as root: permission bits do not stop root, chmod-based check skipped");
      return;
    }
    std::string sub = dir.File("ro");
    fs::create_directory(sub);
    REQUIRE(chmod(sub.c_str(), 0500) == 0);
    auto store = SqliteStore::Open(sub + "/kiln.db");
    REQUIRE_FALSE(store);
    CHECK(store.error().code() == Code::kInvalidArgument);
    CHECK(store.error().message() == "cannot open database " + sub + "/kiln.db: directory " + sub +
                                         " is not writable (Permission denied); fix its "
                                         "permissions or pass another --data-dir");
  }
}

TEST_CASE("sqlite store leaves a file with a newer schema byte for byte as it was", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  { OpenOrFail(path); }
  RawExec(path, "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)");
  std::string before = ReadBytes(path);
  auto store = SqliteStore::Open(path);
  REQUIRE_FALSE(store);
  CHECK(store.error().code() == Code::kFailedPrecondition);
  CHECK(ReadBytes(path) == before);
}

TEST_CASE("sqlite store reports a lock held too long as unavailable", "[store]") {
  TempDir dir;
  std::string path = dir.File("kiln.db");
  SqliteOptions options;
  options.busy_timeout_ms = 20;
  auto store = OpenOrFail(path, options);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  auto applied = store->Apply(FullBatch("uid-1", "locked"));
  REQUIRE_FALSE(applied);
  CHECK(applied.error().code() == Code::kUnavailable);
  CHECK(applied.error().message() == "cannot begin a transaction: database is locked");
  CHECK(applied.error().where() == path);
  // Reads are not blocked by a writer in WAL mode.
  CHECK(store->ListWorkflows(Filter("", "", 0)));

  REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  REQUIRE(store->Apply(FullBatch("uid-1", "locked")));
}

TEST_CASE("sqlite store works in memory", "[store]") {
  auto store = OpenOrFail(":memory:");
  Batch batch = FullBatch("uid-1", "mem");
  REQUIRE(store->Apply(batch));
  RequireHolds(*store, batch, 1);
}

}  // namespace
}  // namespace kiln::store::testing
