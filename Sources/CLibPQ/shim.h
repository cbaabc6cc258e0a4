// libpq's public header. Debian installs it under /usr/include/postgresql, which only
// `pkg-config libpq` tells the compiler about (see Package.swift).
#include <libpq-fe.h>
