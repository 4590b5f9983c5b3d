// A tiny authoritative DNS server on a loopback UDP port, for pointing a real third-party server
// (Prosody's resolver, through its `unbound = { forward = ... }` option) at our test listeners:
// SRV records for `_xmpp-server._tcp.<domain>` and A records, everything else NXDOMAIN.
import dgram from 'node:dgram';

export interface TestDns {
  port: number;
  /** `_xmpp-server._tcp.<domain>` → <target>:<port>, and <target> → 127.0.0.1 */
  addSrv(name: string, target: string, port: number): void;
  addA(name: string, address: string): void;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;
const CLASS_IN = 1;

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([Buffer.byteLength(p)]), Buffer.from(p)])), Buffer.from([0])]);
}

/** The question's name, type and where the question section ends. */
function parseQuestion(query: Buffer): { name: string; type: number; end: number } | null {
  let offset = 12;
  const labels: string[] = [];
  while (offset < query.length) {
    const length = query[offset]!;
    if (length === 0) break;
    if (length > 63) return null; // no compression in questions
    labels.push(query.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  if (offset + 5 > query.length) return null;
  return { name: labels.join('.').toLowerCase(), type: query.readUInt16BE(offset + 1), end: offset + 5 };
}

export async function startTestDns(): Promise<TestDns> {
  const srv = new Map<string, { target: string; port: number }>();
  const a = new Map<string, string>();
  const socket = dgram.createSocket('udp4');
  socket.on('message', (query, peer) => {
    if (query.length < 12) return;
    const question = parseQuestion(query);
    if (question === null) return;
    const answers: Buffer[] = [];
    let known = false;
    const record = (type: number, rdata: Buffer) => {
      const head = Buffer.alloc(12);
      head.writeUInt16BE(0xc00c, 0); // the name in the question
      head.writeUInt16BE(type, 2);
      head.writeUInt16BE(CLASS_IN, 4);
      head.writeUInt32BE(5, 6); // TTL
      head.writeUInt16BE(rdata.length, 10);
      answers.push(head, rdata);
    };
    const service = srv.get(question.name);
    if (service !== undefined) {
      known = true;
      if (question.type === TYPE_SRV) {
        const fixed = Buffer.alloc(6);
        fixed.writeUInt16BE(0, 0);
        fixed.writeUInt16BE(0, 2);
        fixed.writeUInt16BE(service.port, 4);
        record(TYPE_SRV, Buffer.concat([fixed, encodeName(service.target)]));
      }
    }
    const address = a.get(question.name);
    if (address !== undefined) {
      known = true;
      if (question.type === TYPE_A) record(TYPE_A, Buffer.from(address.split('.').map(Number)));
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8400 | 0x0100 | 0x0080 | (known ? 0 : 3), 2); // QR AA RD RA, NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length / 2, 6);
    socket.send(Buffer.concat([header, query.subarray(12, question.end), ...answers]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    addSrv(name, target, port) {
      srv.set(name.toLowerCase(), { target, port });
      a.set(target.toLowerCase(), '127.0.0.1');
    },
    addA(name, address) {
      a.set(name.toLowerCase(), address);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
