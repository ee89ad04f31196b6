// Every corpus file with an expected_local_phase runs under `kiln run` (the local executor) to
// that phase; tests/data/run-known-failures.tsv lists the exceptions (tests/cli/corpus_run.h).
#include "tests/cli/corpus_run.h"

TEST_CASE("corpus workflows run locally to their expected phase", "[cli][corpus][.slow]") {
  kiln::testing::corpus::RunCorpus("", {"run-known-failures.tsv"}, "locally");
}
