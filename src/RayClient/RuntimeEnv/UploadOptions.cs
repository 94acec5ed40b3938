using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RayClient.Packaging;

/// <summary>
/// How <see cref="RuntimeEnvUploader"/> packages and uploads. A new instance starts from Ray's
/// defaults as a Python client on this machine would apply them, environment variables included.
/// </summary>
internal sealed class UploadOptions
{
    /// <summary>Ray's default pin: 600 seconds.</summary>
    public const int DefaultPinExpirationSeconds = 600;

    /// <summary>Creates options from Ray's defaults and this process's environment variables.</summary>
    public UploadOptions()
        : this(Environment.GetEnvironmentVariable)
    {
    }

    /// <summary>Creates options from Ray's defaults and the given environment.</summary>
    /// <exception cref="RayRuntimeEnvException">An environment variable holds an invalid value.</exception>
    public UploadOptions(Func<string, string?> getEnvironmentVariable)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);
        Packaging = PackagingOptions.FromEnvironment(getEnvironmentVariable);
        var pin = getEnvironmentVariable("RAY_RUNTIME_ENV_TEMPORARY_REFERENCE_EXPIRATION_S");
        if (!string.IsNullOrWhiteSpace(pin))
        {
            if (!int.TryParse(pin, NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds))
            {
                throw new RayRuntimeEnvException($"RAY_RUNTIME_ENV_TEMPORARY_REFERENCE_EXPIRATION_S must be an integer, got '{pin}'.");
            }

            PinExpirationSeconds = seconds;
        }
    }

    /// <summary>
    /// What goes into a package and the size cap. Default: <see cref="PackagingOptions.FromEnvironment"/>
    /// (.gitignore unless <c>RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1</c>, Ray's default excludes, 250 MiB − 64 KiB).
    /// </summary>
    public PackagingOptions Packaging { get; init; }

    /// <summary>
    /// Seconds a new package stays pinned before a job references it; 0 skips pinning, negative is
    /// an error. Default: <c>RAY_RUNTIME_ENV_TEMPORARY_REFERENCE_EXPIRATION_S</c> or 600.
    /// </summary>
    public int PinExpirationSeconds { get; init; } = DefaultPinExpirationSeconds;

    /// <summary>Folder for the temporary zip files. Default: null, the system temp folder.</summary>
    public string? TempDirectory { get; init; }

    /// <summary>Receives uploads and large-file warnings. Default: <see cref="NullLogger.Instance"/>.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>
    /// Remember, per store, which URIs were uploaded or found present, so the same content is not
    /// checked, zipped or sent again in this process. Default: true.
    /// </summary>
    public bool UseProcessCache { get; init; } = true;
}
