/*
 * Lua-scripted "sensor node" firmware for the fota MCU corpus.
 * Builds against Lua 5.3 and 5.4.  APP_VERSION 1 or 2 (default 1).
 *  v2: new C binding board.crc16(), one more script line, new version string.
 */
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#ifndef APP_VERSION
#define APP_VERSION 1
#endif

#if APP_VERSION >= 2
#define APP_VERSION_STR "lua-node 2.0.0"
#else
#define APP_VERSION_STR "lua-node 1.0.0"
#endif

extern uint32_t board_millis(void);
extern void board_puts(const char *s);

static int l_millis(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)board_millis());
    return 1;
}

static int l_uart(lua_State *L)
{
    size_t n, i;
    const char *s = luaL_checklstring(L, 1, &n);
    for (i = 0; i < n; i++) {
        char c[2] = { s[i], 0 };
        board_puts(c);
    }
    return 0;
}

static int l_version(lua_State *L)
{
    lua_pushstring(L, APP_VERSION_STR);
    return 1;
}

#if APP_VERSION >= 2
/* CRC-16/CCITT-FALSE over a Lua string */
static int l_crc16(lua_State *L)
{
    size_t n, i;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned crc = 0xFFFFu;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) : (crc << 1);
        crc &= 0xFFFFu;
    }
    lua_pushinteger(L, (lua_Integer)crc);
    return 1;
}
#endif

static const luaL_Reg board_funcs[] = {
    { "millis", l_millis },
    { "uart", l_uart },
    { "version", l_version },
#if APP_VERSION >= 2
    { "crc16", l_crc16 },
#endif
    { NULL, NULL }
};

static int luaopen_board(lua_State *L)
{
    luaL_newlib(L, board_funcs);
    lua_pushinteger(L, APP_VERSION);
    lua_setfield(L, -2, "app_version");
    return 1;
}

static const luaL_Reg fw_libs[] = {
    { "_G", luaopen_base },
    { LUA_TABLIBNAME, luaopen_table },
    { LUA_STRLIBNAME, luaopen_string },
    { LUA_MATHLIBNAME, luaopen_math },
    { LUA_COLIBNAME, luaopen_coroutine },
    { LUA_UTF8LIBNAME, luaopen_utf8 },
    { "board", luaopen_board },
    { NULL, NULL }
};

static const char fw_script[] =
    "local t = {}\n"
    "for i = 1, 32 do t[i] = (i * 7919) % 101 end\n"
    "table.sort(t)\n"
    "local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end\n"
    "local co = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i * i) end end)\n"
    "local acc = 0\n"
    "for _ = 1, 3 do acc = acc + co() end\n"
    "board.uart(string.format('%s fib=%d sq=%d min=%d max=%d\\n', board.version(), fib(15), acc, t[1], t[#t]))\n"
    "board.uart(('sensor'):rep(2, '-') .. ' ' .. utf8.char(0x3bc) .. 'C ' .. math.floor(math.sqrt(2) * 1000) .. '\\n')\n"
#if APP_VERSION >= 2
    "board.uart(string.format('crc=%04x\\n', board.crc16(board.version())))\n"
#endif
    "function on_tick(ms) if ms % 1000 == 0 then board.uart('tick ' .. ms .. '\\n') end end\n";

int main(void)
{
    const luaL_Reg *lib;
    uint32_t last = 0;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        board_puts("lua: out of memory\n");
        return 1;
    }
    for (lib = fw_libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    if (luaL_loadbuffer(L, fw_script, sizeof fw_script - 1, "=fw") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK) {
        board_puts(lua_tostring(L, -1));
        board_puts("\n");
        lua_close(L);
        return 1;
    }
    for (;;) {
        uint32_t now = board_millis();
        if (now != last) {
            last = now;
            lua_getglobal(L, "on_tick");
            lua_pushinteger(L, (lua_Integer)now);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK)
                lua_pop(L, 1);
        }
        if ((now & 0xFFFu) == 0)
            lua_gc(L, LUA_GCSTEP, 0);
    }
}
