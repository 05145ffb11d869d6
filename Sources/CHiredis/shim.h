#ifndef DROVER_CHIREDIS_SHIM_H
#define DROVER_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
