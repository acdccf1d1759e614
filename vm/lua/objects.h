/* objects.h — gil.lock, gil.queue, gil.value, gil.pool for Lua. */
#ifndef OBJECTS_H
#define OBJECTS_H

#include <lua.h>

/* Add the shared objects' constructors to the gil module table on top of L. */
void objects_open(lua_State *L);

#endif
