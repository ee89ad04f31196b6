// KILN_CHECK: for broken invariants only (never for bad user input, which gets an Error).
#ifndef KILN_BASE_CHECK_H_
#define KILN_BASE_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define KILN_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: KILN_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

#endif  // KILN_BASE_CHECK_H_
