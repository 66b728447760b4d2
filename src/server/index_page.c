/*
 * GET /: a small page, plain HTML and JavaScript, that lists the gears and
 * their websocket routes and offers a console to talk to any of them.
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Orrery</title>\n<style>\n"
    "body{font:15px/1.4 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}\n"
    "code,input,#log{font-family:ui-monospace,monospace}\n"
    "#log{border:1px solid #ccc;height:18rem;overflow:auto;padding:.5rem;white-space:pre-wrap;background:#fafafa}\n"
    "input[type=text]{width:100%;box-sizing:border-box;padding:.3rem}\n"
    ".row{display:flex;gap:.5rem;margin:.5rem 0}.row input{flex:1}\n"
    ".in{color:#06c}.out{color:#080}.sys{color:#888}\n"
    "</style></head><body>\n<h1>Orrery</h1>\n<p>WebSocket gears hosted here:</p>\n<ul id=\"gears\">\n";

static const char tail[] =
    "</ul>\n<h2>Console</h2>\n"
    "<div class=\"row\"><input id=\"url\" type=\"text\" aria-label=\"websocket URL\">"
    "<button id=\"connect\">Connect</button><button id=\"disconnect\" disabled>Disconnect</button></div>\n"
    "<div id=\"log\" role=\"log\" aria-live=\"polite\"></div>\n"
    "<form id=\"send\" class=\"row\"><input id=\"msg\" type=\"text\" placeholder=\"message\" aria-label=\"message\">"
    "<button id=\"sendbtn\" disabled>Send</button></form>\n"
    "<script>\n"
    "const $=id=>document.getElementById(id);let ws=null;\n"
    "const proto=location.protocol==='https:'?'wss:':'ws:';\n"
    "$('url').value=proto+'//'+location.host+'/echo/ws';\n"
    "for(const a of document.querySelectorAll('a.route'))a.onclick=e=>{e.preventDefault();"
    "$('url').value=proto+'//'+location.host+a.dataset.path;};\n"
    "function log(cls,t){const d=document.createElement('div');d.className=cls;d.textContent=t;"
    "$('log').appendChild(d);$('log').scrollTop=1e9;}\n"
    "function ui(open){$('connect').disabled=open;$('disconnect').disabled=!open;$('sendbtn').disabled=!open;}\n"
    "$('connect').onclick=()=>{ws=new WebSocket($('url').value);ws.binaryType='arraybuffer';\n"
    " ws.onopen=()=>{log('sys','connected to '+ws.url);ui(true);};\n"
    " ws.onmessage=e=>log('in','< '+(typeof e.data==='string'?e.data:'['+e.data.byteLength+' bytes]'));\n"
    " ws.onclose=e=>{log('sys','closed: '+e.code+(e.reason?' '+e.reason:''));ui(false);};\n"
    " ws.onerror=()=>log('sys','error');};\n"
    "$('disconnect').onclick=()=>ws&&ws.close(1000,'bye');\n"
    "$('send').onsubmit=e=>{e.preventDefault();if(!ws||ws.readyState!==1)return;"
    "const t=$('msg').value;ws.send(t);log('out','> '+t);$('msg').value='';};\n"
    "</script>\n</body></html>\n";

char *orr_index_page(const orr_server *s, size_t *len) {
    size_t cap = sizeof head + sizeof tail + 256;
    for (size_t i = 0; i < s->n_gears; i++)
        for (size_t r = 0; r < s->gears[i].gear->n_ws_routes; r++)
            cap += 2 * (strlen(s->gears[i].gear->name) + strlen(s->gears[i].gear->ws_routes[r].pattern)) + 128;
    char *p = orr_xmalloc(cap);
    size_t n = 0;
    memcpy(p, head, sizeof head - 1);
    n += sizeof head - 1;
    /* Gear names and patterns are restricted to URL-safe characters
     * (validated at start), so they need no escaping here. */
    for (size_t i = 0; i < s->n_gears; i++) {
        const orr_gear *g = s->gears[i].gear;
        for (size_t r = 0; r < g->n_ws_routes; r++)
            n += (size_t)snprintf(p + n, cap - n,
                                  "<li><b>%s</b>: <a class=\"route\" href=\"#\" data-path=\"/%s%s\"><code>/%s%s</code></a></li>\n",
                                  g->name, g->name, g->ws_routes[r].pattern, g->name, g->ws_routes[r].pattern);
    }
    memcpy(p + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    *len = n;
    return p;
}
