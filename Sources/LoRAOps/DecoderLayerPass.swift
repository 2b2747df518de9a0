// One OPT decoder layer in training, forward and backward, as a call list. Each projection is the
// frozen base matmul plus, where adapted, the LoRA term (with lora_dropout on A's input).
//   pre-LN (125m, 1.3b):  attnIn = LN1(inp); res1 = inp + drop(out_proj(attn(q, k, v)))
//                         ffnIn = LN2(res1); out = res1 + drop(fc2(relu(fc1(ffnIn))))
//   post-LN (350m):       res1 = inp + drop(out_proj(attn(q, k, v)));  ffnIn = LN1(res1)
//                         res2 = ffnIn + drop(fc2(relu(fc1(ffnIn))));  out = LN2(res2)
// q = (q_proj(attnIn) + lora) · hs^-0.5, so q's LoRA term is scaled too. LN1 = self_attn_layer_norm,
// LN2 = final_layer_norm of the layer; drop = OPT's residual dropout (off unless asked for).
import OPTEngine

extension LoRATrainingModel {
    /// The layer's forward pass into `out`. `recompute`: gradient checkpointing's second forward pass, made only
    /// for what the backward pass reads — with pre-LN and fc2 not adapted it stops after fc1 (the backward pass
    /// recomputes the activation from fcPre and needs neither fc2's output nor `out`), a third of the
    /// recomputed products saved.
    func layerForward(
        _ l: Int, _ p: Pass, inp: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, recompute: Bool = false
    ) {
        let cfg = model.config, lw = model.weights.layers[l], a = acts.layers[l], s = acts
        let R = p.R, C = cfg.hiddenSize, F = cfg.ffnDim, preLN = cfg.doLayerNormBefore
        let scaling = 1 / Float(cfg.headDim).squareRoot()

        let attnIn = preLN ? UnsafePointer(a.attnIn) : inp
        if preLN { norm(lw.lnAttn, out: a.attnIn, mean: a.ln1Mean, rstd: a.ln1Rstd, inp: inp, R: R) }
        project(l, .qProj, p, out: a.q, inp: attnIn, K: C, N: C)
        TrainingLoops.scale(a.q, by: scaling, count: R * C)
        project(l, .kProj, p, out: a.k, inp: attnIn, K: C, N: C)
        project(l, .vProj, p, out: a.v, inp: attnIn, K: C, N: C)
        packedCausalAttentionForward(
            out: a.attOut, att: a.att, q: a.q, k: a.k, v: a.v, sequences: p.sequences,
            NH: cfg.numAttentionHeads, hs: cfg.headDim, bf16: model.options.precision == .bf16)
        project(l, .outProj, p, out: s.tmp, inp: a.attOut, K: C, N: C)
        residualMask(l, site: 6, p).map { $0.applyInPlace(s.tmp, rows: R, cols: C, paddedRow: s.paddedRow) }
        TrainingLoops.add(out: a.res1, inp, s.tmp, count: R * C)

        if preLN {
            norm(lw.lnFfn, out: a.ffnIn, mean: a.ln2Mean, rstd: a.ln2Rstd, inp: a.res1, R: R)
        } else {
            norm(lw.lnAttn, out: a.ffnIn, mean: a.ln1Mean, rstd: a.ln1Rstd, inp: a.res1, R: R)
        }
        project(l, .fc1, p, out: a.fcPre, inp: a.ffnIn, K: C, N: F)
        if recompute, preLN, layout.slotIndex(layer: l, module: .fc2) == nil { return }
        activate(out: s.fcAct, pre: a.fcPre, count: R * F)
        project(l, .fc2, p, out: s.tmp, inp: s.fcAct, K: F, N: C)
        residualMask(l, site: 7, p).map { $0.applyInPlace(s.tmp, rows: R, cols: C, paddedRow: s.paddedRow) }
        if preLN {
            TrainingLoops.add(out: out, a.res1, s.tmp, count: R * C)
        } else {
            TrainingLoops.add(out: a.res2, a.ffnIn, s.tmp, count: R * C)
            norm(lw.lnFfn, out: out, mean: a.ln2Mean, rstd: a.ln2Rstd, inp: a.res2, R: R)
        }
    }

    /// Gradient of the layer's output `dOut` (R, C; used as scratch) → the adapters' gradients, and
    /// dInp (R, C, overwritten) unless nil (the lowest adapted layer needs no input gradient).
    func layerBackward(
        _ l: Int, _ p: Pass, inp: UnsafePointer<Float>, dOut: UnsafeMutablePointer<Float>,
        dInp: UnsafeMutablePointer<Float>?
    ) {
        let cfg = model.config, lw = model.weights.layers[l], a = acts.layers[l], s = acts
        let R = p.R, C = cfg.hiddenSize, F = cfg.ffnDim, RC = R * C, preLN = cfg.doLayerNormBefore
        let scaling = 1 / Float(cfg.headDim).squareRoot()

        // --- feed-forward block. dFc2 = gradient of fc2's output: dOut itself (pre-LN) or LN2's input gradient
        // (post-LN), copied to s.tmp only where residual dropout masks it. Every product's first write into a
        // gradient stores (accumulate: false), so no gradient buffer is cleared in a pass of its own.
        var dFc2 = UnsafePointer(dOut)  // pre-LN: dOut doubles as dRes1 once fc2's gradients are made
        if !preLN {
            TrainingLoops.zero(s.dRes, count: RC)
            layerNormBackward(
                dinp: s.dRes, dweight: nil, dbias: nil, dout: dOut, inp: a.res2,
                weight: lw.lnFfn.weight?.floats, mean: a.ln2Mean, rstd: a.ln2Rstd, N: R, C: C)
            dFc2 = UnsafePointer(s.dRes)
        }
        if let mask = residualMask(l, site: 7, p) {
            TrainingLoops.copy(s.tmp, dFc2, count: RC)
            mask.applyInPlace(s.tmp, rows: R, cols: C, paddedRow: s.paddedRow)
            dFc2 = UnsafePointer(s.tmp)
        }
        // fc2's input, act(fcPre), only for an adapter on fc2 (its LoRA gradient); the base needs none
        if layout.slotIndex(layer: l, module: .fc2) != nil { activate(out: s.fcAct, pre: a.fcPre, count: R * F) }
        projectBackward(l, .fc2, p, dinp: s.dFcAct, dout: dFc2, inp: s.fcAct, K: F, N: C, accumulate: false)
        activateBackward(dinp: s.dFcPre, dout: s.dFcAct, pre: a.fcPre, count: R * F)
        projectBackward(l, .fc1, p, dinp: s.dFfnIn, dout: s.dFcPre, inp: a.ffnIn, K: C, N: F, accumulate: false)
        let dRes1 = dOut
        if preLN {
            layerNormBackward(
                dinp: dRes1, dweight: nil, dbias: nil, dout: s.dFfnIn, inp: a.res1,
                weight: lw.lnFfn.weight?.floats, mean: a.ln2Mean, rstd: a.ln2Rstd, N: R, C: C)
        } else {
            TrainingLoops.accumulate(s.dFfnIn, s.dRes, count: RC)
            TrainingLoops.zero(dRes1, count: RC)
            layerNormBackward(
                dinp: dRes1, dweight: nil, dbias: nil, dout: s.dFfnIn, inp: a.res1,
                weight: lw.lnAttn.weight?.floats, mean: a.ln1Mean, rstd: a.ln1Rstd, N: R, C: C)
        }

        // --- attention block: dAttn = gradient of out_proj's output (dRes1, or its masked copy in s.tmp)
        var dAttn = UnsafePointer(dRes1)
        if let mask = residualMask(l, site: 6, p) {
            TrainingLoops.copy(s.tmp, dRes1, count: RC)
            mask.applyInPlace(s.tmp, rows: R, cols: C, paddedRow: s.paddedRow)
            dAttn = UnsafePointer(s.tmp)
        }
        projectBackward(l, .outProj, p, dinp: s.dAttOut, dout: dAttn, inp: a.attOut, K: C, N: C, accumulate: false)
        packedCausalAttentionBackward(
            dq: s.dq, dk: s.dk, dv: s.dv, scratch: s.attScratch, parts: s.attentionScratchParts,
            maxLength: s.maxT, dout: s.dAttOut, att: a.att, q: a.q, k: a.k, v: a.v,
            sequences: p.sequences, NH: cfg.numAttentionHeads, hs: cfg.headDim,
            bf16: model.options.precision == .bf16, accumulate: false)
        TrainingLoops.scale(s.dq, by: scaling, count: RC)
        let attnIn = preLN ? UnsafePointer(a.attnIn) : inp
        let dAttnIn: UnsafeMutablePointer<Float>? = dInp == nil ? nil : s.dAttnIn
        projectBackward(l, .qProj, p, dinp: dAttnIn, dout: s.dq, inp: attnIn, K: C, N: C, accumulate: false)
        projectBackward(l, .kProj, p, dinp: dAttnIn, dout: s.dk, inp: attnIn, K: C, N: C)
        projectBackward(l, .vProj, p, dinp: dAttnIn, dout: s.dv, inp: attnIn, K: C, N: C)
        guard let dInp else { return }
        TrainingLoops.copy(dInp, dRes1, count: RC)
        if preLN {
            layerNormBackward(
                dinp: dInp, dweight: nil, dbias: nil, dout: s.dAttnIn, inp: inp,
                weight: lw.lnAttn.weight?.floats, mean: a.ln1Mean, rstd: a.ln1Rstd, N: R, C: C)
        } else {
            TrainingLoops.accumulate(dInp, s.dAttnIn, count: RC)
        }
    }

    // MARK: - pieces

    private func norm(
        _ ln: LayerNormWeights, out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, R: Int
    ) {
        layerNormForward(
            out: out, mean: mean, rstd: rstd, inp: inp, weight: ln.weight?.floats, bias: ln.bias?.floats,
            N: R, C: model.config.hiddenSize)
    }

    /// out = act(pre). ReLU (every published OPT) as one vectorisable pass; others through Activation.
    private func activate(out: UnsafeMutablePointer<Float>, pre: UnsafePointer<Float>, count n: Int) {
        if model.activation == .relu {
            TrainingLoops.relu(out: out, pre: pre, count: n)
        } else {
            out.update(from: pre, count: n)
            model.activation.forward(out, count: n)
        }
    }

    /// dinp = dout · act'(pre)  (overwrites dinp)
    private func activateBackward(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
        pre: UnsafePointer<Float>, count n: Int
    ) {
        if model.activation == .relu {
            TrainingLoops.reluBackward(dinp: dinp, dout: dout, pre: pre, count: n)
        } else {
            dinp.update(repeating: 0, count: n)
            model.activation.backward(dinp: dinp, dout: dout, pre: pre, count: n)
        }
    }

    private func residualMask(_ l: Int, site: Int, _ p: Pass) -> DropoutMask? {
        residualDropout > 0
            ? DropoutMask(p: residualDropout, seed: seed, microStep: p.microStep, layer: l, site: site) : nil
    }

    private func loraMask(_ l: Int, _ m: ProjectionModule, _ p: Pass) -> DropoutMask? {
        loraDropout > 0
            ? DropoutMask(
                p: loraDropout, seed: seed, microStep: p.microStep, layer: l,
                site: ProjectionModule.allCases.firstIndex(of: m) ?? 0) : nil
    }

    /// out (R, N) = inp · Wᵀ + bias  [+ scale · B(A drop(inp)), keeping u = drop(inp)·Aᵀ]
    private func project(
        _ l: Int, _ m: ProjectionModule, _ p: Pass, out: UnsafeMutablePointer<Float>,
        inp: UnsafePointer<Float>, K: Int, N: Int
    ) {
        let lw = model.weights.layers[l].linear(m)
        matmul(out: out, inp: inp, weight: lw.weight, bias: lw.bias?.floats, M: p.R, K: K, N: N, scratch: kernelScratch)
        guard let index = layout.slotIndex(layer: l, module: m) else { return }
        let slot = layout.slots[index]
        var x = inp
        if let mask = loraMask(l, m, p) {
            mask.forward(out: acts.drop, inp: inp, rows: p.R, cols: K, paddedRow: acts.paddedRow)
            x = UnsafePointer(acts.drop)
        }
        loraForward(
            out: out, u: acts.layers[l].loraU + uColumn[index] * p.R, inp: x, a: p.params.a(slot),
            b: p.params.b(slot), scale: slot.scale, M: p.R, K: K, N: N, r: slot.r)
    }

    /// dinp (R, K) += dout · W (frozen base) + the LoRA path (`accumulate: false`: dinp = …, whatever it held);
    /// dA, dB += into the pass's gradients.
    private func projectBackward(
        _ l: Int, _ m: ProjectionModule, _ p: Pass, dinp: UnsafeMutablePointer<Float>?,
        dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, K: Int, N: Int, accumulate: Bool = true
    ) {
        let lw = model.weights.layers[l].linear(m)
        if let dinp {
            linearBackwardInput(
                dinp: dinp, dout: dout, weight: lw.weight, M: p.R, K: K, N: N, scratch: kernelScratch,
                accumulate: accumulate)
        }
        guard let index = layout.slotIndex(layer: l, module: m), let grads = p.grads else { return }
        let slot = layout.slots[index]
        let u = acts.layers[l].loraU + uColumn[index] * p.R
        if let mask = loraMask(l, m, p) {
            mask.forward(out: acts.drop, inp: inp, rows: p.R, cols: K, paddedRow: acts.paddedRow)
            if dinp != nil { TrainingLoops.zero(acts.dDrop, count: p.R * K) }
            loraBackward(
                dinp: dinp == nil ? nil : acts.dDrop, da: grads.a(slot), db: grads.b(slot), g: acts.g,
                dout: dout, inp: acts.drop, u: u, a: p.params.a(slot), b: p.params.b(slot), scale: slot.scale,
                M: p.R, K: K, N: N, r: slot.r)
            if let dinp { mask.backward(dinp: dinp, dout: acts.dDrop, rows: p.R, cols: K, paddedRow: acts.paddedRow) }
        } else {
            loraBackward(
                dinp: dinp, da: grads.a(slot), db: grads.b(slot), g: acts.g, dout: dout, inp: inp, u: u,
                a: p.params.a(slot), b: p.params.b(slot), scale: slot.scale, M: p.R, K: K, N: N, r: slot.r)
        }
    }
}
