// kube/token_source.h: when a token file is read again, and what happens when it cannot be.
#include <catch2/catch.hpp>

#include "kube/token_source.h"
#include "tests/kubesim/test_util.h"

namespace kiln::kube {

using kubesim::testing::TempDir;
using kubesim::testing::WriteFile;
using namespace std::chrono_literals;

namespace {

// A clock the test moves by hand.
struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  TokenSource::Now Fn() {
    return [this] { return now; };
  }
};

}  // namespace

TEST_CASE("a token file is read again once the copy is a minute old", "[kube][token]") {
  TempDir dir;
  const std::string file = dir / "token";
  WriteFile(file, "first\n");
  auto first = ReadTokenFile(file);
  REQUIRE(first.has_value());
  CHECK(*first == "first");
  ManualClock clock;
  TokenSource source(*first, file, 60s, clock.Fn());
  WriteFile(file, "second\n");
  clock.now += 59s;
  CHECK(source.Token() == "first");
  CHECK(source.rereads() == 0);
  clock.now += 1s;
  CHECK(source.Token() == "second");
  CHECK(source.rereads() == 1);
  // The age counts from the last read.
  WriteFile(file, "third");
  clock.now += 30s;
  CHECK(source.Token() == "second");
  clock.now += 30s;
  CHECK(source.Token() == "third");
}

TEST_CASE("a token file that cannot be read keeps the last token and is tried again on the next call",
          "[kube][token]") {
  TempDir dir;
  const std::string file = dir / "token";
  WriteFile(file, "kept");
  ManualClock clock;
  TokenSource source("kept", file, 60s, clock.Fn());
  std::filesystem::remove(file);
  clock.now += 61s;
  CHECK(source.Token() == "kept");
  REQUIRE(source.last_error().has_value());
  CHECK(source.last_error()->message() == "cannot read " + file + ": No such file or directory");
  // An empty file (a rotation half done) is no token either.
  WriteFile(file, "\n");
  CHECK(source.Token() == "kept");
  REQUIRE(source.last_error().has_value());
  CHECK(source.last_error()->message() == "token file " + file + " is empty");
  // Once the file is back it is read at once, without waiting another minute.
  WriteFile(file, "rotated");
  CHECK(source.Token() == "rotated");
  CHECK_FALSE(source.last_error().has_value());
  CHECK(source.rereads() == 3);
}

TEST_CASE("a fixed token is never read from a file", "[kube][token]") {
  ManualClock clock;
  TokenSource source("static", "", 0s, clock.Fn());
  clock.now += 1h;
  CHECK(source.Token() == "static");
  CHECK(source.rereads() == 0);
}

}  // namespace kiln::kube
