# nbgrader configuration for grading resnet-course (docs/TEACHING.md): copy it into your course directory.
# tests/test_nbgrader.py runs nbgrader with this very file.
c = get_config()  # noqa: F821  (nbgrader provides get_config when it reads this file)

c.CourseDirectory.course_id = "resnet-course"

# Where release_assignment puts assignments and submit/collect exchange them. JupyterHub installations use
# nbgrader's default, /srv/nbgrader/exchange (it must exist and be writable by everyone); for a course on one
# machine any shared folder will do.
# c.Exchange.root = "/srv/nbgrader/exchange"

# autograde runs every notebook top to bottom. Grade with RESNET_COURSE_PROFILE=smoke (seconds per notebook;
# the exercises' checks do not depend on the profile); the limit per cell leaves room for the cpu profile.
c.Execute.timeout = 1800

# The stub students see in place of a solution: says what to do, and the check cell below then fails.
c.ClearSolutions.code_stub = {
    "python": '# YOUR CODE HERE\nraise NotImplementedError("Write your solution here, then run the check cell below.")'
}
