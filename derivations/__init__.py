"""SymPy derivations of Mean-Reverting diffusion and of the MR Sampler.

Build-time layer: every formula the runtime package uses is derived and checked here, then
printed into ``mrs_numerics/_generated`` by :mod:`derivations.codegen`. One module per subject:

- :mod:`derivations.forward`      the forward MR SDE, its mean/variance ODEs and marginal;
- :mod:`derivations.log_snr`      λ = log(α/σ), its inverse and the identity g² dt = −2σ² dλ;
- :mod:`derivations.solutions`    the four semi-analytical solutions (ODE/SDE × noise/data);
- :mod:`derivations.phi`          the exponential-integrator φ-functions and their stable form;
- :mod:`derivations.updates`      Taylor/φ weights, multistep and singlestep updates;
- :mod:`derivations.order_proofs` symbolic local-order proofs of every update;
- :mod:`derivations.parameterization` noise/data/velocity/score conversions with μ;
- :mod:`derivations.baselines`    Euler–Maruyama, Euler/Heun, posterior sampling (= SDE-1 data);
- :mod:`derivations.schedules`    continuous schedules from θ(t);
- :mod:`derivations.irsde`        the IR-SDE discrete tables;
- :mod:`derivations.printers`     SymPy printers for torch and numpy (with ``expm1``, φ);
- :mod:`derivations.codegen`      writes ``mrs_numerics/_generated``.
"""
