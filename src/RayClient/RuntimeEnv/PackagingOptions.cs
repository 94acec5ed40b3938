using System.Globalization;

namespace RayClient.Packaging;

/// <summary>
/// What goes into a runtime-env package and how big it may be. Immutable; the defaults follow the
/// newest Ray release (ray-versions.md §6) except for the size cap, which is the conservative one.
/// </summary>
internal sealed record PackagingOptions
{
    /// <summary>Ray's default working_dir excludes (PR #59566): <c>.git, .venv, venv, __pycache__</c>.</summary>
    public static readonly IReadOnlyList<string> RayDefaultExcludes = [".git", ".venv", "venv", "__pycache__"];

    /// <summary>250 MiB − 64 KiB: fits one KVPut on every Ray 2.x GCS (ray-versions.md row 9).</summary>
    public const long DefaultMaxPackageSizeBytes = (250L * 1024 * 1024) - (64 * 1024);

    /// <summary>512 MiB − 64 KiB: for clusters known to run Ray 2.5 or newer.</summary>
    public const long Ray25MaxPackageSizeBytes = (512L * 1024 * 1024) - (64 * 1024);

    /// <summary>Ray's <c>FILE_SIZE_WARNING</c>: 10 MiB.</summary>
    public const long DefaultFileSizeWarningBytes = 10L * 1024 * 1024;

    /// <summary>Ray's defaults without looking at the environment.</summary>
    public static PackagingOptions Default { get; } = new();

    /// <summary>
    /// Honour <c>.gitignore</c> files at every level. Default: true (Ray: unless
    /// <c>RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1</c>). <c>.rayignore</c> files are always honoured.
    /// </summary>
    public bool IncludeGitignore { get; init; } = true;

    /// <summary>
    /// Patterns put before the user's <c>excludes</c> when packaging a working_dir. Default:
    /// <see cref="RayDefaultExcludes"/>; empty switches them off. They change the package URI.
    /// </summary>
    public IReadOnlyList<string> DefaultExcludes { get; init; } = RayDefaultExcludes;

    /// <summary>A package of this many bytes or more is refused. Default: <see cref="DefaultMaxPackageSizeBytes"/>.</summary>
    public long MaxPackageSizeBytes { get; init; } = DefaultMaxPackageSizeBytes;

    /// <summary>A single file of this many bytes or more gives a warning. Default: 10 MiB.</summary>
    public long FileSizeWarningBytes { get; init; } = DefaultFileSizeWarningBytes;

    /// <summary>
    /// Options as a Python client on this machine would use them: <c>RAY_RUNTIME_ENV_IGNORE_GITIGNORE</c>,
    /// <c>RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES</c> (comma-separated, empty disables) and
    /// <c>RAY_max_grpc_message_size</c> (overrides the size cap).
    /// </summary>
    /// <param name="getEnvironmentVariable">Reads a variable; default <see cref="Environment.GetEnvironmentVariable(string)"/>.</param>
    public static PackagingOptions FromEnvironment(Func<string, string?>? getEnvironmentVariable = null)
    {
        var env = getEnvironmentVariable ?? Environment.GetEnvironmentVariable;
        var options = new PackagingOptions
        {
            // Ray compares with "1" exactly (packaging.py / worker.py).
            IncludeGitignore = env("RAY_RUNTIME_ENV_IGNORE_GITIGNORE") != "1",
        };

        var defaults = env("RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES");
        if (defaults is not null)
        {
            options = options with
            {
                DefaultExcludes = defaults.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
            };
        }

        var maxSize = env("RAY_max_grpc_message_size");
        if (!string.IsNullOrWhiteSpace(maxSize))
        {
            if (!long.TryParse(maxSize, NumberStyles.Integer, CultureInfo.InvariantCulture, out var bytes) || bytes <= 0)
            {
                throw new RayRuntimeEnvException($"RAY_max_grpc_message_size must be a positive integer, got '{maxSize}'.");
            }

            options = options with { MaxPackageSizeBytes = bytes };
        }

        return options;
    }
}
