"""Self-checks for the notebooks' exercises (nbgrader's autograder tests call them) and notebook 00's
environment check.

* :mod:`~resnet_course.checks.framework` — ``friendly_check``, ``Hint``, ``ExerciseFailed``, shared helpers;
* :mod:`~resnet_course.checks.environment` — ``environment_report()`` with a fix for every problem;
* :mod:`~resnet_course.checks.notebook01` … :mod:`~resnet_course.checks.notebook10` — the checks of each
  notebook's exercises, one module per notebook.
"""
