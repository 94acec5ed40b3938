using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

/// <summary>
/// A Ray runtime environment (Ray's <c>ray.runtime_env.RuntimeEnv</c>): the files, packages and
/// environment variables that workers of a job, task or actor run with. Build it with init
/// properties or from the JSON accepted by <c>ray job submit --runtime-env-json</c>
/// (<see cref="FromJson"/>). Local paths (<see cref="WorkingDir"/>, <see cref="PyModules"/>) are
/// packaged and uploaded when a session connects, and replaced by <c>gcs://</c> URIs.
/// </summary>
/// <remarks>
/// <see cref="Validate"/> applies Ray's rules (ray:python/ray/_private/runtime_env/validation.py,
/// ray:python/ray/runtime_env/runtime_env.py); the session runs it once before anything is sent.
/// JSON-valued properties (<see cref="Container"/>, <see cref="Nsight"/>, <see cref="Plugins"/>) are
/// deep-copied when read or written, so later changes to the nodes do not leak in.
/// </remarks>
public sealed partial class RuntimeEnv
{
    /// <summary>
    /// Working directory of the workers: a local directory (uploaded), a local <c>.zip</c> file
    /// (uploaded as is) or a URI (<c>gcs://</c>, <c>https://</c>, <c>s3://</c>, <c>gs://</c>,
    /// <c>file://</c>; remote ones must end in <c>.zip</c>). Default: null.
    /// </summary>
    public string? WorkingDir { get; init; }

    /// <summary>
    /// Modules importable by the workers: local directories (uploaded with the directory's name as
    /// the top-level package), local <c>.py</c> and <c>.whl</c> files, or URIs. Default: null.
    /// </summary>
    public IReadOnlyList<string>? PyModules { get; init; }

    /// <summary>pip packages to install (exclusive with <see cref="Uv"/> and <see cref="Conda"/>). Default: null.</summary>
    public RuntimeEnvPip? Pip { get; init; }

    /// <summary>uv packages to install (exclusive with <see cref="Pip"/> and <see cref="Conda"/>). Default: null.</summary>
    public RuntimeEnvUv? Uv { get; init; }

    /// <summary>conda environment (exclusive with <see cref="Pip"/> and <see cref="Uv"/>). Default: null.</summary>
    public RuntimeEnvConda? Conda { get; init; }

    /// <summary>Environment variables of the workers; <c>${VAR}</c> is expanded on the cluster. Default: null.</summary>
    public IReadOnlyDictionary<string, string>? EnvVars { get; init; }

    /// <summary>
    /// gitignore-style patterns of files not to upload from <see cref="WorkingDir"/> and
    /// <see cref="PyModules"/> directories, relative to each package root. Used for packaging
    /// only and dropped from the env that is sent. Default: null.
    /// </summary>
    public IReadOnlyList<string>? Excludes { get; init; }

    /// <summary>Setup timeout and eager install. Default: null (the cluster's defaults).</summary>
    public RuntimeEnvConfig? Config { get; init; }

    /// <summary>Container to run workers in (<c>{"image", "worker_path", "run_options"}</c>). Default: null.</summary>
    public JsonObject? Container { get; init; }

    /// <summary>Container image the workers run in (experimental in Ray). Default: null.</summary>
    public string? ImageUri { get; init; }

    /// <summary>URIs of jars for Java workers. Default: null.</summary>
    public IReadOnlyList<string>? JavaJars { get; init; }

    /// <summary>Python function, as a <c>module.function</c> string, run when each worker starts. Default: null.</summary>
    public string? WorkerProcessSetupHook { get; init; }

    /// <summary>Executable (with arguments) that starts Python workers, e.g. <c>uv run --project x</c>. Default: null.</summary>
    public string? PyExecutable { get; init; }

    /// <summary>Nsight Systems profiling: the string <c>"default"</c> or a dict of options; sent as <c>_nsight</c>. Default: null.</summary>
    public JsonNode? Nsight { get; init; }

    /// <summary>
    /// Every other key (runtime-env plugins and Ray-internal keys such as <c>_ray_commit</c>),
    /// passed through unchanged. Default: null.
    /// </summary>
    public IReadOnlyDictionary<string, JsonNode?>? Plugins { get; init; }

    /// <summary>True when the env was produced by <see cref="Validate"/> (files read, empties dropped).</summary>
    internal bool IsValidated { get; private init; }

    /// <summary>True when no field is set.</summary>
    public bool IsEmpty => ToJsonObject().Count == 0;

    /// <summary>
    /// The env a task or actor runs with when it specifies <paramref name="child"/> and its parent
    /// (the job, or the calling task/actor) has <paramref name="parent"/>, as Ray's core worker
    /// computes it: every top-level key of the child replaces the parent's, except <c>env_vars</c>,
    /// which are merged key by key with the child's values winning. The cluster applies this rule
    /// itself; use it to see the effective env, not to pre-merge what you send.
    /// </summary>
    public static RuntimeEnv Merge(RuntimeEnv? parent, RuntimeEnv child)
    {
        ArgumentNullException.ThrowIfNull(child);
        if (parent is null)
        {
            return child;
        }

        var result = parent.ToJsonObject();
        foreach (var (key, value) in child.ToJsonObject())
        {
            if (key == "env_vars" && result["env_vars"] is JsonObject parentVars && value is JsonObject childVars)
            {
                foreach (var (name, text) in childVars)
                {
                    parentVars[name] = text?.DeepClone();
                }
            }
            else
            {
                result[key] = value?.DeepClone();
            }
        }

        return FromJsonObject(result);
    }

    /// <summary>A copy without <see cref="Excludes"/> and with the given package locations.</summary>
    internal RuntimeEnv WithUploadedPackages(string? workingDir, IReadOnlyList<string>? pyModules) => new()
    {
        WorkingDir = workingDir,
        PyModules = pyModules,
        Pip = Pip,
        Uv = Uv,
        Conda = Conda,
        EnvVars = EnvVars,
        Excludes = null,
        Config = Config,
        Container = Container,
        ImageUri = ImageUri,
        JavaJars = JavaJars,
        WorkerProcessSetupHook = WorkerProcessSetupHook,
        PyExecutable = PyExecutable,
        Nsight = Nsight,
        Plugins = Plugins,
        IsValidated = IsValidated,
    };

    /// <inheritdoc/>
    public override string ToString() => ToJson();
}
