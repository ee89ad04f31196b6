// The one translation unit that compiles Boost.Asio, Asio SSL and Beast for the whole project.
// BOOST_ASIO_SEPARATE_COMPILATION and BOOST_BEAST_SEPARATE_COMPILATION are global compile
// definitions (top-level CMakeLists.txt), so every other file includes only the declarations
// and links kiln_asio; no binary can mix header-only and separately compiled Asio (an ODR
// violation). See docs/ARCHITECTURE.md, "Asio".
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
