#!/usr/bin/env python3
"""The plain Python loop `gendr upscale` is compared with (scripts/compare-python-loop).

One frame at a time, whole frames, no tiles: PyAV decodes, ONNX Runtime
(CPU, N intra-op threads, defaults otherwise) runs the model, libx264 encodes
(CRF 18, preset medium: `gendr upscale`'s defaults). Prints one JSON line.
"""

import argparse
import json
import time

import av
import numpy as np
import onnxruntime as ort


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--model", required=True, help="an N×3×H×W → N×3×sH×sW ONNX model")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = p.parse_args()

    started = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    src = av.open(args.input)
    video = src.streams.video[0]
    dst = av.open(args.output, "w")
    out = None
    frames = 0
    for frame in src.decode(video):
        rgb = frame.to_ndarray(format="rgb24")
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        y = session.run(None, {name: x})[0][0]
        img = (np.clip(y, 0.0, 1.0).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8)
        if out is None:
            out = dst.add_stream("libx264", rate=video.average_rate)
            out.height, out.width = img.shape[:2]
            out.pix_fmt = "yuv420p"
            out.options = {"crf": "18", "preset": "medium"}
        for packet in out.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            dst.mux(packet)
        frames += 1
    if out is not None:
        for packet in out.encode():
            dst.mux(packet)
    dst.close()
    src.close()
    seconds = time.perf_counter() - started
    print(json.dumps({"frames": frames, "seconds": seconds, "fps": frames / seconds}))


if __name__ == "__main__":
    main()
