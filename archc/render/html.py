"""Self-contained HTML pages: the picture at every depth, expand/collapse on click, hover details.

Everything is inline (Graphviz's SVG, CSS, a short script); the page fetches nothing, so it
works offline and from a mail attachment. Text reaches the page only through
:mod:`archc.render.escape` (``html_text``, and ``script_json`` for the data the script reads);
the script writes it with ``textContent``, never as markup.

The page holds one picture per depth (0: every outermost block level as a box, up to all
levels open). Clicking a box opens the next depth with that block scrolled into view;
clicking an open block's frame closes that level; buttons open or close all.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from archc.render.escape import html_text, script_json
from archc.render.view import View

STYLE = """
body{font-family:Helvetica,Arial,sans-serif;margin:0;color:#222}
header{padding:8px 16px;background:#f4f6f9;border-bottom:1px solid #dde;display:flex;gap:12px;align-items:center}
header h1{font-size:18px;margin:0 12px 0 0}
button{font-size:13px;padding:3px 10px}
main{padding:8px 16px}
.view{display:none;overflow:auto}.view.shown{display:block}
.view g.node.box,.view g.cluster{cursor:pointer}
#info{position:fixed;right:12px;top:56px;max-width:420px;background:#fffef0;border:1px solid #cc9;
 padding:8px 10px;font-size:12px;white-space:pre-wrap;display:none;box-shadow:0 2px 6px #0002}
#info b{display:block;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin:8px 0 16px}
td,th{border:1px solid #ccd;padding:2px 6px;text-align:left}td.num{text-align:right}
section{margin-bottom:24px}
"""

SCRIPT = r"""
(function(){
 const data=JSON.parse(document.getElementById('archc-data').textContent);
 const views=[...document.querySelectorAll('.view')];
 const info=document.getElementById('info');
 const asked=/#depth=(\d+)/.exec(location.hash);
 let current=asked?Number(asked[1]):data.start;
 function show(d,focus){
  current=Math.max(0,Math.min(views.length-1,d));
  views.forEach((v,i)=>v.classList.toggle('shown',i===current));
  document.getElementById('depth').textContent=data.depths[current];
  if(focus){const el=document.getElementById(focus);if(el)el.scrollIntoView({block:'center'});}
 }
 function meta(el){
  const v=data.views[current];
  return v.items[el.id]||v.clusters[el.id];
 }
 views.forEach((view,vi)=>{
  view.querySelectorAll('g.node,g.cluster').forEach(el=>{
   const m=data.views[vi].items[el.id]||data.views[vi].clusters[el.id];
   if(!m)return;
   if(m.kind==='box')el.classList.add('box');
   el.addEventListener('mouseenter',()=>{
    info.textContent='';const t=document.createElement('b');t.textContent=m.title;info.appendChild(t);
    info.appendChild(document.createTextNode(m.info.join('\n')));info.style.display='block';});
   el.addEventListener('mouseleave',()=>{info.style.display='none';});
   el.addEventListener('click',ev=>{
    ev.stopPropagation();
    if(m.kind==='box'&&vi+1<views.length){
     const target=data.views[vi+1].paths[m.title];show(vi+1,target);}
    else if(m.kind==='cluster'){
     const target=data.views[m.level].boxes[m.title];show(m.level,target);}
   });
  });
 });
 document.getElementById('collapse').addEventListener('click',()=>show(0));
 document.getElementById('expand').addEventListener('click',()=>show(views.length-1));
 document.getElementById('less').addEventListener('click',()=>show(current-1));
 document.getElementById('more').addEventListener('click',()=>show(current+1));
 show(current);
})();
"""


def view_data(view: View, prefix: str) -> dict:
    """What the page's script needs to know about one picture: its items, clusters and boxes by id."""
    items = {prefix + it.id: {"title": it.title, "info": it.info, "kind": it.kind} for it in view.items}
    clusters, paths = {}, {}
    for k, c in enumerate(view.clusters):
        level = _level_index(view, k)
        clusters[f"{prefix}c{k}"] = {"title": c.level.path, "info": [c.level.title, "click to close this level"],
                                     "kind": "cluster", "level": level}
        paths[c.level.path] = f"{prefix}c{k}"
    boxes = {it.title: prefix + it.id for it in view.items if it.kind == "box"}
    return {"items": items, "clusters": clusters, "paths": paths, "boxes": boxes}


def _level_index(view: View, k: int) -> int:
    n, parent = 0, view.clusters[k].parent
    while parent is not None:
        n, parent = n + 1, view.clusters[parent].parent
    return n


def svg_body(svg: bytes) -> str:
    """Graphviz's SVG without its XML prologue and DOCTYPE, to stand inline in HTML."""
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


def graph_page(title: str, views: Sequence[View], start: int, draw: Callable[[View, str], bytes],
               extra_sections: Sequence[str] = ()) -> str:
    """One HTML page: the pictures of ``views`` (one per depth, shallowest first), ``start``
    shown first; ``draw(view, id_prefix)`` gives a picture's SVG; ``extra_sections`` are
    HTML fragments appended below (already escaped by their makers)."""
    blocks, data = [], {"views": [], "start": start, "depths": []}
    for d, view in enumerate(views):
        prefix = f"v{d}_"
        blocks.append(f'<div class="view" id="view{d}">{svg_body(draw(view, prefix))}</div>')
        data["views"].append(view_data(view, prefix))
        data["depths"].append("all levels" if d == len(views) - 1 else f"depth {d}")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html_text(title)}</title>", f"<style>{STYLE}</style></head><body>",
        (f"<header><h1>{html_text(title)}</h1>"
        '<button id="collapse">collapse all</button><button id="less">&minus;</button>'
        '<span id="depth"></span><button id="more">+</button><button id="expand">expand all</button>'
        "<span>click a box to open it, a frame to close it; hover for details</span></header>"),
        "<main>", *blocks, *extra_sections, "</main>", '<div id="info"></div>',
        f'<script type="application/json" id="archc-data">{script_json(data)}</script>',
        f"<script>{SCRIPT}</script>", "</body></html>", ""])
