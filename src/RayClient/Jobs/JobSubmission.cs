namespace RayClient.Jobs;

/// <summary>
/// What to submit (the arguments of Ray's <c>JobSubmissionClient.submit_job</c>). Only
/// <see cref="Entrypoint"/> is required; every other field is left out of the request when unset,
/// so older clusters accept it.
/// </summary>
public sealed class JobSubmission
{
    /// <summary>Creates a submission running <paramref name="entrypoint"/>.</summary>
    /// <param name="entrypoint">The shell command to run, sent as is (e.g. <c>python script.py --n 3</c>).</param>
    public JobSubmission(string entrypoint)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(entrypoint);
        Entrypoint = entrypoint;
    }

    /// <summary>The shell command the job runs, sent untouched (the CLI joins its arguments with shell quoting first).</summary>
    public string Entrypoint { get; }

    /// <summary>
    /// The job's id. Default: null, and the client generates one in Ray's format
    /// (<c>raysubmit_</c> and 16 characters) before the first attempt, so a retried submit can never
    /// start the job twice. Ids with whitespace, control characters, <c>/</c> or <c>\</c> are refused.
    /// </summary>
    public string? SubmissionId { get; init; }

    /// <summary>
    /// The job's runtime env. A local <c>working_dir</c> or <c>py_modules</c> entry is zipped, hashed
    /// and uploaded once (as the Ray Client path does) and replaced by its <c>gcs://</c> URI. Default: null.
    /// </summary>
    public RuntimeEnv? RuntimeEnv { get; init; }

    /// <summary>Metadata stored with the job; the client's default metadata is merged over it, as Ray does. Default: null.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>CPUs reserved for the entrypoint itself (needs Ray 2.2). Default: null (0).</summary>
    public double? EntrypointNumCpus { get; init; }

    /// <summary>GPUs reserved for the entrypoint itself (needs Ray 2.2). Default: null (0).</summary>
    public double? EntrypointNumGpus { get; init; }

    /// <summary>Memory in bytes reserved for the entrypoint itself (needs Ray 2.8). Default: null (0).</summary>
    public long? EntrypointMemory { get; init; }

    /// <summary>Custom resources reserved for the entrypoint itself (needs Ray 2.2). Default: null.</summary>
    public IReadOnlyDictionary<string, double>? EntrypointResources { get; init; }
}
