// A minimal ONNX graph builder over onnx-proto: nodes, initializers and typed graph I/O, then bytes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';

export type ElemType = 'float32' | 'int64' | 'int32' | 'bool';
/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

type AttrValue = number | number[] | string | { float: number } | { graph: onnx.IGraphProto } | { tensor: onnx.ITensorProto };

export interface NodeSpec {
  readonly op: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attrs?: Readonly<Record<string, AttrValue>>;
  readonly domain?: string;
}

function valueInfo(name: string, type: ElemType, dims: readonly Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if ('graph' in v) return { name, type: T.GRAPH, g: v.graph };
  if ('tensor' in v) return { name, type: T.TENSOR, t: v.tensor };
  return { name, type: T.FLOAT, f: v.float };
}

/** Weights larger than this go to the external data file when the builder has one. */
const EXTERNAL_MIN_BYTES = 4096;
/** Page-aligned offsets let onnxruntime map the file instead of reading it. */
const EXTERNAL_ALIGN = 4096;

/**
 * Collects one graph. Names are checked for uniqueness so a typo cannot silently alias two tensors.
 * With `externalFile`, large float initializers are written to that file as they arrive (ONNX external data, the
 * location stored relative to the model file, which must sit in the same folder): the caller can drop each weight
 * right after adding it, so building never holds a second copy of the whole model.
 */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private externalFd: number | null = null;
  private externalOffset = 0;
  private readonly inits: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly produced = new Set<string>();
  private counter = 0;

  constructor(private readonly externalFile: string | null = null) {}

  /** A fresh intermediate name with a readable prefix. */
  tmp(prefix: string): string {
    return `${prefix}_${this.counter++}`;
  }

  private claim(name: string): void {
    if (this.produced.has(name)) throw new Error(`graph builder: tensor name '${name}' defined twice`);
    this.produced.add(name);
  }

  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: ElemType, dims: readonly Dim[]): void {
    if (!this.produced.has(name)) throw new Error(`graph builder: output '${name}' is never produced`);
    this.outputs.push(valueInfo(name, type, dims));
  }

  /**
   * A float32 initializer. In memory: `data` is referenced, not copied, until `toBytes()`. With an external file and a
   * large tensor: written out now, `data` is not kept.
   */
  initF32(name: string, dims: readonly number[], data: Float32Array): string {
    return this.initRaw(name, onnx.TensorProto.DataType.FLOAT, dims, data);
  }

  /** A uint8 initializer (packed quantised weights), stored like initF32. */
  initU8(name: string, dims: readonly number[], data: Uint8Array): string {
    return this.initRaw(name, onnx.TensorProto.DataType.UINT8, dims, data);
  }

  private initRaw(name: string, dataType: onnx.TensorProto.DataType, dims: readonly number[], data: Float32Array | Uint8Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`graph builder: initializer '${name}' has ${data.length} values, dims ${dims} need ${n}`);
    this.claim(name);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.externalFile !== null && data.byteLength >= EXTERNAL_MIN_BYTES) {
      if (this.externalFd === null) this.externalFd = fs.openSync(this.externalFile, 'w');
      const offset = Math.ceil(this.externalOffset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
      fs.writeSync(this.externalFd, bytes, 0, bytes.byteLength, offset);
      this.externalOffset = offset + bytes.byteLength;
      this.inits.push({
        name,
        dataType,
        dims: [...dims],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: path.basename(this.externalFile) },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(bytes.byteLength) },
        ],
      });
      return name;
    }
    this.inits.push({ name, dataType, dims: [...dims], rawData: bytes });
    return name;
  }

  initI64(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    this.claim(name);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.push({
      name,
      dataType: onnx.TensorProto.DataType.INT64,
      dims: [...dims],
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  /** Adds a node; returns its outputs. An empty output name ('') means "not wanted". */
  node(spec: NodeSpec): string[] {
    for (const o of spec.outputs) if (o !== '') this.claim(o);
    this.nodes.push({
      opType: spec.op,
      domain: spec.domain ?? '',
      input: [...spec.inputs],
      output: [...spec.outputs],
      name: `${spec.op}_${this.nodes.length}`,
      attribute: Object.entries(spec.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    });
    return [...spec.outputs];
  }

  /** Shorthand for a single-output node with an auto-named output. */
  op(op: string, inputs: readonly string[], attrs?: Readonly<Record<string, AttrValue>>, domain?: string): string {
    const out = this.tmp(op.toLowerCase());
    this.node({ op, inputs, outputs: [out], ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) });
    return out;
  }

  /**
   * This builder's nodes as a subgraph (an If/Loop branch): it may read the outer graph's tensors by name and
   * yields `outputs` (types only; shapes may differ between branches).
   */
  toSubgraph(graphName: string, outputs: readonly { name: string; type: ElemType }[]): onnx.IGraphProto {
    if (this.inits.length > 0 || this.inputs.length > 0) throw new Error('graph builder: a subgraph takes no inputs or initializers');
    return {
      name: graphName,
      node: this.nodes,
      output: outputs.map((o) => ({ name: o.name, type: { tensorType: { elemType: ELEM[o.type] } } })),
    };
  }

  toBytes(graphName: string): Uint8Array {
    if (this.externalFd !== null) {
      fs.closeSync(this.externalFd);
      this.externalFd = null;
    }
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'attend',
      opsetImport: [
        { domain: '', version: 17 },
        { domain: 'com.microsoft', version: 1 },
      ],
      graph: { name: graphName, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}
