// Self-signed TLS credentials generated at start (OpenSSL), for test servers and development.
// Thread-safety: pure function, safe from any thread.
#ifndef KILN_HTTP_TLS_H_
#define KILN_HTTP_TLS_H_

#include <string>
#include <vector>

#include "base/error.h"

namespace kiln::http {

// PEM texts: the CA that clients trust, and the serving certificate (signed by the CA) with its
// private key.
struct TlsCredentials {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Generates a fresh P-256 CA and a serving certificate valid for one year for `hosts`: each
// entry that parses as an IPv4/IPv6 address becomes an IP subjectAltName, others DNS names.
// Returns kInternal with OpenSSL's error text if any step fails.
Result<TlsCredentials> GenerateTlsCredentials(const std::vector<std::string>& hosts,
                                              const std::string& common_name);

}  // namespace kiln::http

#endif  // KILN_HTTP_TLS_H_
