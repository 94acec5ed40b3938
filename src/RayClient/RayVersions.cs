namespace RayClient;

/// <summary>
/// The Ray releases whose Ray Client conventions RayClient implements (see README, "Supported Ray versions").
/// One code path covers them; the few differences are switches keyed on the server's version
/// (shared/spec/ray-versions.md §3.3).
/// </summary>
public static class RayVersions
{
    /// <summary>Oldest supported Ray release.</summary>
    public static readonly Version Minimum = new(2, 0, 0);

    /// <summary>First release that is no longer supported (a Ray 3 may change the protocol).</summary>
    public static readonly Version ExclusiveMaximum = new(3, 0, 0);

    /// <summary>Human-readable support window, used in error messages.</summary>
    public const string SupportedRange = "Ray 2.0.0 to the newest 2.x release (nightly 3.0.0.dev builds accepted)";

    /// <summary>Parses a Ray version string such as <c>2.9.3</c>, <c>2.10.0+local</c> or <c>3.0.0.dev0</c>.</summary>
    /// <returns>The numeric version and whether it is a development build.</returns>
    public static (Version Version, bool IsDevelopment) ParseRayVersion(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var core = text.Trim();
        var isDev = core.Contains("dev", StringComparison.OrdinalIgnoreCase);
        var cut = core.IndexOfAny(['+', '-', 'r', 'a', 'b', 'd']);
        if (cut > 0)
        {
            core = core[..cut];
        }

        core = core.TrimEnd('.');
        var parts = core.Split('.');
        var numbers = new int[3];
        for (var i = 0; i < Math.Min(parts.Length, 3); i++)
        {
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out numbers[i]))
            {
                throw new FormatException($"'{text}' is not a Ray version.");
            }
        }

        if (parts.Length == 0 || parts[0].Length == 0)
        {
            throw new FormatException($"'{text}' is not a Ray version.");
        }

        return (new Version(numbers[0], numbers[1], numbers[2]), isDev);
    }

    /// <summary>True when RayClient implements the conventions of that server version.</summary>
    public static bool IsSupported(string rayVersion)
    {
        var (version, isDev) = ParseRayVersion(rayVersion);
        if (isDev && version.Major == ExclusiveMaximum.Major && version.Minor == 0)
        {
            return true; // master/nightly builds report 3.0.0.dev0: treat as the newest 2.x
        }

        return version >= Minimum && version < ExclusiveMaximum;
    }
}
