"""共享: applications, grants, usage feedback and deadlines of the sharing system."""
