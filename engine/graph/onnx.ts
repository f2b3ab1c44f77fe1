// A minimal ONNX graph builder over onnx-proto: nodes, initializers and typed graph I/O, then bytes.
import { onnx } from 'onnx-proto';

export type ElemType = 'float32' | 'int64' | 'int32';
/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

const ELEM: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
};

type AttrValue = number | number[] | string | { float: number };

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
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INT, i: v };
}

/** Collects one graph. Names are checked for uniqueness so a typo cannot silently alias two tensors. */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inits: onnx.ITensorProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly produced = new Set<string>();
  private counter = 0;

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

  /** A float32 initializer; `data` is referenced, not copied, until `toBytes()`. */
  initF32(name: string, dims: readonly number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`graph builder: initializer '${name}' has ${data.length} values, dims ${dims} need ${n}`);
    this.claim(name);
    this.inits.push({
      name,
      dataType: onnx.TensorProto.DataType.FLOAT,
      dims: [...dims],
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
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

  toBytes(graphName: string): Uint8Array {
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
