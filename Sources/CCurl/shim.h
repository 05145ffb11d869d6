#ifndef DROVER_CCURL_SHIM_H
#define DROVER_CCURL_SHIM_H
#include <curl/curl.h>
#endif
