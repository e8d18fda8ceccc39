"""SymPy derivations of Mean-Reverting diffusion and of the MR Sampler.

Build-time layer: every formula the runtime package uses is derived and checked here, then
printed into ``mrs_numerics/_generated`` by `derivations.codegen`. One module per subject:

- `derivations.forward`      the forward MR SDE, its mean/variance ODEs and marginal;
- `derivations.log_snr`      λ = log(α/σ), its inverse and the identity g² dt = −2σ² dλ;
- `derivations.solutions`    the four semi-analytical solutions (ODE/SDE × noise/data);
- `derivations.phi`          the exponential-integrator φ-functions and their stable form;
- `derivations.updates`      Taylor/φ weights, multistep and singlestep updates;
- `derivations.order_proofs` symbolic local-order proofs of every update;
- `derivations.parameterization` noise/data/velocity/score conversions with μ;
- `derivations.baselines`    Euler–Maruyama, Euler/Heun, posterior sampling (= SDE-1 data);
- `derivations.schedules`    continuous schedules from θ(t);
- `derivations.irsde`        the IR-SDE discrete tables;
- `derivations.printers`     SymPy printers for torch and numpy (with ``expm1``, φ);
- `derivations.codegen`      writes ``mrs_numerics/_generated``.
"""
