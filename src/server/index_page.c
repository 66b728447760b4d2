/*
 * GET /: a small page, plain HTML and JavaScript, that lists the gears and
 * their websocket routes, offers a console to talk to any of them, and a
 * chat client for the chat gear (src/gears/chat.c).
 */
#include "server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Orrery</title>\n<style>\n"
    "body{font:15px/1.4 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 "
    "1rem;color:#222}\n"
    "code,input,#log,#chat-log{font-family:ui-monospace,monospace}\n"
    "#log,#chat-log{border:1px solid "
    "#ccc;height:18rem;overflow:auto;padding:.5rem;white-space:pre-wrap;background:#fafafa}\n"
    "input[type=text]{width:100%;box-sizing:border-box;padding:.3rem}\n"
    ".row{display:flex;gap:.5rem;margin:.5rem 0}.row input{flex:1}\n"
    ".in{color:#06c}.out{color:#080}.sys{color:#888}.dm{color:#90c}.err{color:#c00}\n"
    "</style></head><body>\n<h1>Orrery</h1>\n<p>WebSocket gears hosted here:</p>\n<ul "
    "id=\"gears\">\n";

static const char tail[] =
    "</ul>\n<h2>Console</h2>\n"
    "<div class=\"row\"><input id=\"url\" type=\"text\" aria-label=\"websocket URL\">"
    "<button id=\"connect\">Connect</button><button id=\"disconnect\" "
    "disabled>Disconnect</button></div>\n"
    "<div id=\"log\" role=\"log\" aria-live=\"polite\"></div>\n"
    "<form id=\"send\" class=\"row\"><input id=\"msg\" type=\"text\" placeholder=\"message\" "
    "aria-label=\"message\">"
    "<button id=\"sendbtn\" disabled>Send</button></form>\n"
    "<script>\n"
    "const $=id=>document.getElementById(id);let ws=null;\n"
    "const proto=location.protocol==='https:'?'wss:':'ws:';\n"
    "$('url').value=proto+'//'+location.host+'/echo/ws';\n"
    "for(const a of document.querySelectorAll('a.route'))a.onclick=e=>{e.preventDefault();"
    "$('url').value=proto+'//'+location.host+a.dataset.path;};\n"
    "function log(cls,t){const d=document.createElement('div');d.className=cls;d.textContent=t;"
    "$('log').appendChild(d);$('log').scrollTop=1e9;}\n"
    "function "
    "ui(open){$('connect').disabled=open;$('disconnect').disabled=!open;$('sendbtn').disabled=!"
    "open;}\n"
    "$('connect').onclick=()=>{ws=new WebSocket($('url').value);ws.binaryType='arraybuffer';\n"
    " ws.onopen=()=>{log('sys','connected to '+ws.url);ui(true);};\n"
    " ws.onmessage=e=>log('in','< '+(typeof e.data==='string'?e.data:'['+e.data.byteLength+' "
    "bytes]'));\n"
    " ws.onclose=e=>{log('sys','closed: '+e.code+(e.reason?' '+e.reason:''));ui(false);};\n"
    " ws.onerror=()=>log('sys','error');};\n"
    "$('disconnect').onclick=()=>ws&&ws.close(1000,'bye');\n"
    "$('send').onsubmit=e=>{e.preventDefault();if(!ws||ws.readyState!==1)return;"
    "const t=$('msg').value;ws.send(t);log('out','> '+t);$('msg').value='';};\n"
    "</script>\n";

/* The chat client: its script reuses `$` and `proto` from the console's.
 * Everything a peer sent is shown through textContent, never as HTML. */
static const char chat[] =
    "<h2>Chat</h2>\n"
    "<p>Talks to the chat gear at <code>/chat/ws?name=</code>: pick a name, join rooms, "
    "say something to a room, or send a direct message to a name.</p>\n"
    "<div class=\"row\"><input id=\"chat-name\" type=\"text\" placeholder=\"your name\" "
    "aria-label=\"your name\" maxlength=\"32\">"
    "<button id=\"chat-connect\">Connect</button><button id=\"chat-disconnect\" "
    "disabled>Disconnect</button></div>\n"
    "<div class=\"row\"><input id=\"chat-room\" type=\"text\" placeholder=\"room\" "
    "aria-label=\"room\" "
    "value=\"lobby\" maxlength=\"64\">"
    "<button id=\"chat-join\" disabled>Join</button><button id=\"chat-leave\" "
    "disabled>Leave</button></div>\n"
    "<form id=\"chat-say\" class=\"row\"><input id=\"chat-text\" type=\"text\" "
    "placeholder=\"message\" "
    "aria-label=\"message\"><button id=\"chat-send\" disabled>Send to room</button></form>\n"
    "<div class=\"row\"><input id=\"chat-to\" type=\"text\" placeholder=\"to (a name)\" "
    "aria-label=\"direct message to\" maxlength=\"32\">"
    "<button id=\"chat-dm\" disabled>DM</button></div>\n"
    "<div id=\"chat-log\" role=\"log\" aria-live=\"polite\"></div>\n"
    "<script>\n"
    "let cws=null;\n"
    "function clog(cls,t){const d=document.createElement('div');d.className=cls;d.textContent=t;"
    "$('chat-log').appendChild(d);$('chat-log').scrollTop=1e9;}\n"
    "function chatUi(open){$('chat-disconnect').disabled=!open;"
    "for(const id of ['chat-join','chat-leave','chat-send','chat-dm'])$(id).disabled=!open;}\n"
    "const rooms=new Set();let again=0;\n"
    "function csend(o){if(!cws||cws.readyState!==1)return false;cws.send(JSON.stringify(o));return "
    "true;}\n"
    "const about=m=>m.room!==undefined?' (room '+m.room+')':m.to!==undefined?' (to '+m.to+')':'';\n"
    "const chatShow={\n"
    " welcome:m=>{for(const r of rooms)csend({type:'join',room:r});return['sys','connected as "
    "'+m.name];},\n"
    " joined:m=>{rooms.add(m.room);return['sys','joined '+m.room];},\n"
    " left:m=>{rooms.delete(m.room);return['sys','left '+m.room];},\n"
    " message:m=>['in','['+m.room+'] '+m.from+': '+m.text],\n"
    " said:m=>['sys','sent to '+m.count+' in '+m.room],\n"
    " dm:m=>['dm','[dm] '+m.from+': '+m.text],\n"
    " dm_sent:m=>m.delivered?['sys','dm delivered to '+m.to]:m.parked?['sys','dm kept for '+m.to+"
    "' (away: delivered when they are back)']:['err','dm not delivered: nobody is called '+m.to],\n"
    " error:m=>['err','error: '+m.error+about(m)]};\n"
    "$('chat-connect').onclick=()=>{rooms.clear();chatOpen();};\n"
    /* After a 1001 (a drain: the server asks to come back) the page
     * reconnects by itself, with the same name and rooms, after a random
     * 0.2-2.2 s so that a drained node's users do not all come back at
     * once (and tries again, up to 5 times, while no server answers);
     * direct messages sent meanwhile wait (parking) and arrive first. */
    "function chatOpen(){const n=$('chat-name').value.trim();\n"
    " if(!n){clog('err','pick a name first');return;}\n"
    " $('chat-connect').disabled=true;\n"
    " const w=new "
    "WebSocket(proto+'//'+location.host+'/chat/ws?name='+encodeURIComponent(n));cws=w;\n"
    " w.onopen=()=>{w.opened=true;again=0;if(cws===w)chatUi(true);};\n"
    " w.onmessage=e=>{let m=null;try{m=JSON.parse(e.data);}catch(x){}\n"
    "  const f=m&&chatShow[m.type];const [c,t]=f?f(m):['sys',String(e.data)];clog(c,t);};\n"
    " w.onclose=e=>{clog('sys','closed: '+e.code+(e.reason?' '+e.reason:''));"
    "if(cws!==w)return;cws=null;chatUi(false);$('chat-connect').disabled=false;\n"
    "  again=e.code===1001?5:w.opened?0:Math.max(0,again-1);\n"
    "  if(again>0){const ms=200+Math.floor(Math.random()*2000);"
    "clog('sys','reconnecting in '+ms+' ms');\n"
    "   $('chat-connect').disabled=true;setTimeout(()=>{if(!cws)chatOpen();else "
    "$('chat-connect').disabled=false;},ms);}};\n"
    " w.onerror=()=>clog('err','connection error');}\n"
    "$('chat-disconnect').onclick=()=>cws&&cws.close(1000,'bye');\n"
    "$('chat-join').onclick=()=>csend({type:'join',room:$('chat-room').value});\n"
    "$('chat-leave').onclick=()=>csend({type:'leave',room:$('chat-room').value});\n"
    "$('chat-say').onsubmit=e=>{e.preventDefault();const t=$('chat-text').value;"
    "if(t&&csend({type:'say',room:$('chat-room').value,text:t}))$('chat-text').value='';};\n"
    "$('chat-dm').onclick=()=>{const "
    "to=$('chat-to').value.trim(),t=$('chat-text').value;if(!t||!to)return;\n"
    " if(csend({type:'dm',to,text:t})){clog('out','[dm to '+to+'] "
    "'+t);$('chat-text').value='';}};\n"
    "</script>\n";

static const char end[] = "</body></html>\n";

/* The page's list, one route a line, with the version in service. */
typedef struct page_list {
    char *p;
    size_t n, cap;
} page_list;

static void list_route(void *arg, const orr_gear *g, const char *pattern, const char *version) {
    page_list *l = arg;
    size_t need = 2 * (strlen(g->name) + strlen(pattern)) + 5 * strlen(version) + 256;
    if (l->n + need > l->cap) l->p = orr_xrealloc(l->p, l->cap = (l->n + need) * 2);
    /* Gear names and patterns are URL-safe (checked at load); a file name
     * is any name ending in .so: escaped. */
    l->n += (size_t)snprintf(l->p + l->n, l->cap - l->n,
                             "<li><b>%s</b>: <a class=\"route\" href=\"#\" "
                             "data-path=\"/%s%s\"><code>/%s%s</code></a> <small>(",
                             g->name, g->name, pattern, g->name, pattern);
    for (const char *c = version; *c; c++) {
        const char *e = *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : NULL;
        if (e)
            l->n += (size_t)snprintf(l->p + l->n, l->cap - l->n, "%s", e);
        else
            l->p[l->n++] = *c;
    }
    l->n += (size_t)snprintf(l->p + l->n, l->cap - l->n, ")</small></li>\n");
}

char *index_page_render(orr_server *s, size_t *len) {
    page_list l = {0};
    gears_foreach_route(s, list_route, &l);
    size_t cap = sizeof head + sizeof tail + sizeof chat + sizeof end + l.n + 1;
    char *p = orr_xmalloc(cap);
    size_t n = 0;
    memcpy(p, head, sizeof head - 1);
    n += sizeof head - 1;
    if (l.n) memcpy(p + n, l.p, l.n);
    n += l.n;
    free(l.p);
    memcpy(p + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    memcpy(p + n, chat, sizeof chat - 1);
    n += sizeof chat - 1;
    memcpy(p + n, end, sizeof end - 1);
    n += sizeof end - 1;
    *len = n;
    return p;
}
