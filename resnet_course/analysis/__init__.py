"""Looking at models and results: metrics, verdicts, figures and probes.

Modules (import from them directly; this package re-exports nothing):

* :mod:`~resnet_course.analysis.classification` — confusion matrix, per-class metrics, mistakes, seed tables;
* :mod:`~resnet_course.analysis.degradation` — notebook 01's verdict on plain vs residual depth;
* :mod:`~resnet_course.analysis.plots` — training curves and other figures of runs;
* :mod:`~resnet_course.analysis.datavis` — figures of data: image grids, class counts, augmentations;
* :mod:`~resnet_course.analysis.architecture` — parameter and layer counts, summaries, activation memory;
* :mod:`~resnet_course.analysis.activations` — feature maps and dead-ReLU fractions;
* :mod:`~resnet_course.analysis.gradients` — gradient norms and flow, the computation graph;
* :mod:`~resnet_course.analysis.gradcam` — Grad-CAM.
"""
