# RayClient embedded server: the `ray` module of job drivers (coming in the next commit).
raise ImportError("The RayClient embedded server does not provide a ray module for job drivers yet.")
