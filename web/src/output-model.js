// What a code cell's outputs show, decided without a DOM (tested under Node):
// consecutive streams of one name joined, the richest MIME type the page can
// render safely picked from each bundle, prompts as Jupyter numbers them, and
// which outputs are long enough to fold behind "show more".

/**
 * Richest first, as Jupyter orders them. `application/javascript` is not
 * here: it never runs; a bundle with nothing else shows it as text.
 */
export const MIME_ORDER = [
  'image/png',
  'image/jpeg',
  'image/svg+xml',
  'text/html',
  'text/markdown',
  'text/latex',
  'application/json',
  'text/plain',
];

/** Lines after which a text output is folded. */
export const FOLD_LINES = 40;

/** nbformat's multiline strings are a string or a list of strings. */
export function joinText(value) {
  if (Array.isArray(value)) return value.join('');
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : String(value);
}

/** The MIME type to show of a bundle, or null when it has none the page knows. */
export function pickMime(data) {
  if (!data || typeof data !== 'object') return null;
  const mime = MIME_ORDER.find((m) => data[m] !== undefined && data[m] !== null);
  if (mime) return mime;
  return data['application/javascript'] !== undefined ? 'application/javascript' : null;
}

/** `In [3]:` / `In [ ]:` */
export function inPrompt(count) {
  return `In [${Number.isInteger(count) ? count : ' '}]:`;
}

/** `Out[3]:` */
export function outPrompt(count) {
  return `Out[${Number.isInteger(count) ? count : ' '}]:`;
}

/**
 * The display items of a cell's outputs:
 *   {kind: 'stream', name: 'stdout'|'stderr', text}
 *   {kind: 'data', mime, value, prompt}   value is a string, or JSON for application/json
 *   {kind: 'error', ename, evalue, traceback}
 *   {kind: 'unknown', type}
 * Every text item also carries `lines` (its line count) and `fold` (true when long).
 */
export function displayItems(outputs) {
  const items = [];
  for (const out of Array.isArray(outputs) ? outputs : []) {
    const item = displayItem(out);
    const last = items[items.length - 1];
    if (item.kind === 'stream' && last?.kind === 'stream' && last.name === item.name) {
      last.text += item.text;
    } else {
      items.push(item);
    }
  }
  for (const item of items) {
    const text = item.kind === 'error' ? item.traceback : item.kind === 'stream' ? item.text : typeof item.value === 'string' && isTextMime(item.mime) ? item.value : '';
    item.lines = text ? text.split('\n').length : 0;
    item.fold = item.lines > FOLD_LINES;
  }
  return items;
}

function isTextMime(mime) {
  return mime === 'text/plain' || mime === 'application/javascript' || mime === 'application/json';
}

function displayItem(out) {
  switch (out?.output_type) {
    case 'stream':
      return { kind: 'stream', name: out.name === 'stderr' ? 'stderr' : 'stdout', text: joinText(out.text) };
    case 'execute_result':
    case 'display_data': {
      const mime = pickMime(out.data);
      if (!mime) return { kind: 'unknown', type: out.output_type };
      const raw = out.data[mime];
      const value = mime === 'application/json' ? JSON.stringify(raw, null, 2) : joinText(raw);
      const prompt = out.output_type === 'execute_result' ? outPrompt(out.execution_count) : null;
      return { kind: 'data', mime, value, prompt };
    }
    case 'error':
      return {
        kind: 'error',
        ename: String(out.ename ?? ''),
        evalue: String(out.evalue ?? ''),
        traceback: (Array.isArray(out.traceback) ? out.traceback : []).map(String).join('\n'),
      };
    default:
      return { kind: 'unknown', type: String(out?.output_type ?? '') };
  }
}

/** A data: URL for an image output (base64 for png/jpeg, text for SVG). */
export function imageUrl(mime, value) {
  if (mime === 'image/svg+xml') return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(value)}`;
  return `data:${mime};base64,${value.replace(/\s+/g, '')}`;
}

/** The TeX inside a text/latex output, its `$`/`$$` delimiters removed. */
export function latexSource(value) {
  const t = value.trim();
  const m = /^\$\$([\s\S]*)\$\$$/.exec(t) || /^\$([\s\S]*)\$$/.exec(t) || /^\\\[([\s\S]*)\\\]$/.exec(t);
  return m ? m[1].trim() : t;
}
