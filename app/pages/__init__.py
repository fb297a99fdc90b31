"""Every HTML route: jobs and the job form, sweeps and workers, the explorer; rendered through `render`."""
