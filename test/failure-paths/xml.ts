// A strict little XML reader for the tests: enough of XML 1.0 to refuse a document that is
// not well-formed (unbalanced or crossed tags, unquoted or duplicate attributes, a bare `&`
// or `<`, unknown entities, text outside the root) and to hand back the element tree.
// No dependency: CI has only `npm ci`.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

const NAME = '[A-Za-z_:][A-Za-z0-9_.:-]*';
const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/g;

function decode(raw: string, where: string): string {
  if (/[<]/.test(raw)) throw new Error(`bare < in ${where}`);
  const stripped = raw.replace(ENTITY, '');
  if (stripped.includes('&')) throw new Error(`bare & or unknown entity in ${where}: ${JSON.stringify(raw.slice(0, 60))}`);
  return raw.replace(ENTITY, (e) => {
    if (e === '&amp;') return '&';
    if (e === '&lt;') return '<';
    if (e === '&gt;') return '>';
    if (e === '&quot;') return '"';
    if (e === '&apos;') return "'";
    return String.fromCodePoint(e[2] === 'x' ? parseInt(e.slice(3, -1), 16) : parseInt(e.slice(2, -1), 10));
  });
}

/** Parses `xml`; throws naming the first well-formedness error. */
export function parseXml(xml: string): XmlElement {
  let i = 0;
  const decl = /^<\?xml\s+version="1\.[0-9]"(?:\s+encoding="[A-Za-z0-9._-]+")?\s*\?>/.exec(xml);
  if (decl) i = decl[0].length;
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const tagRe = new RegExp(`<(/?)(${NAME})((?:\\s+${NAME}\\s*=\\s*(?:"[^"]*"|'[^']*'))*)\\s*(/?)>`, 'y');
  const attrRe = new RegExp(`(${NAME})\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'g');
  while (i < xml.length) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text.length > 0) {
      const top = stack.at(-1);
      if (top === undefined) {
        if (text.trim() !== '') throw new Error(`text outside the root element: ${JSON.stringify(text.slice(0, 40))}`);
      } else top.text += decode(text, `<${top.name}>`);
    }
    if (lt < 0) break;
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end < 0) throw new Error('unterminated comment');
      i = end + 3;
      continue;
    }
    tagRe.lastIndex = lt;
    const m = tagRe.exec(xml);
    if (m === null) throw new Error(`malformed tag at offset ${lt}: ${JSON.stringify(xml.slice(lt, lt + 60))}`);
    const [whole, closing, name, attrText, selfClosing] = m as unknown as [string, string, string, string, string];
    i = lt + whole.length;
    if (closing) {
      const open = stack.pop();
      if (open?.name !== name) throw new Error(`</${name}> closes <${open?.name ?? 'nothing'}>`);
      continue;
    }
    if (root !== undefined && stack.length === 0) throw new Error(`second root element <${name}>`);
    const el: XmlElement = { name, attrs: {}, children: [], text: '' };
    for (const a of attrText.matchAll(attrRe)) {
      const key = a[1] as string;
      if (key in el.attrs) throw new Error(`duplicate attribute ${key} on <${name}>`);
      el.attrs[key] = decode(a[2] ?? a[3] ?? '', `attribute ${key}`);
    }
    stack.at(-1)?.children.push(el);
    if (root === undefined) root = el;
    if (!selfClosing) stack.push(el);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.at(-1)?.name}>`);
  if (root === undefined) throw new Error('no root element');
  return root;
}

/** Every element named `name` under `el` (depth first). */
export function findAll(el: XmlElement, name: string): XmlElement[] {
  return [...(el.name === name ? [el] : []), ...el.children.flatMap((c) => findAll(c, name))];
}
