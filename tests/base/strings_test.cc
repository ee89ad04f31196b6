#include "base/strings.h"

#include <catch2/catch.hpp>

namespace kiln {

TEST_CASE("EditDistance counts single-character edits", "[base]") {
  CHECK(EditDistance("train", "trian", 5) == 1);  // one transposition
  CHECK(EditDistance("kitten", "sitting", 5) == 3);
  CHECK(EditDistance("train", "train", 5) == 0);
  CHECK(EditDistance("a", "abcdef", 2) == 3);  // capped at max + 1
}

TEST_CASE("DidYouMean proposes the closest candidate only when it is close", "[base]") {
  CHECK(DidYouMean("trian", {"train", "evaluate"}) == " (did you mean \"train\"?)");
  CHECK(DidYouMean("zzzzzz", {"train", "evaluate"}).empty());
}

TEST_CASE("Quote escapes quotes and control characters", "[base]") {
  CHECK(Quote("a\"b\n") == "\"a\\\"b\\n\"");
}

}  // namespace kiln
