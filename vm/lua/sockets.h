/* sockets.h — TCP sockets for scripts (gil.listen, gil.connect; see sockets.c). */
#ifndef SOCKETS_H
#define SOCKETS_H

#include <lua.h>

/* Add listen and connect to the gil table at the top of L's stack. */
void sockets_open(lua_State *L);

#endif
