namespace RayClient.Session;

/// <summary>
/// Finds the token of Ray's token authentication (Ray 2.52+, <c>RAY_AUTH_MODE=token</c>) where Ray
/// looks for it, in Ray's order (ray:src/ray/rpc/authentication/authentication_token_loader.cc):
/// <c>RAY_AUTH_TOKEN</c>, then the file named by <c>RAY_AUTH_TOKEN_PATH</c>, then
/// <c>~/.ray/auth_token</c>. A file's first line is the token; surrounding whitespace is trimmed.
/// Used by the client (what to send) and by the embedded server (what to require): shared source,
/// compiled into both.
/// </summary>
internal static class RayAuthToken
{
    /// <summary>The header Ray reads the token from (<c>authorization: Bearer &lt;token&gt;</c>).</summary>
    public const string HeaderName = "authorization";

    /// <summary>The status message Ray's gRPC servers refuse a missing or wrong token with (status UNAUTHENTICATED).</summary>
    public const string RefusedMessage = "Invalid or missing authentication token";

    /// <summary>Ray's advice when token authentication is on and no token can be found.</summary>
    public const string NoTokenMessage =
        "Token authentication is enabled (RAY_AUTH_MODE=token) but no authentication token was found. " +
        "Create a token file at ~/.ray/auth_token, or store the token in any file and set RAY_AUTH_TOKEN_PATH to point to it, " +
        "or set the RAY_AUTH_TOKEN environment variable.";

    /// <summary>True when <c>RAY_AUTH_MODE</c> is <c>token</c> (any case), as Ray's GetAuthenticationMode.</summary>
    public static bool IsTokenModeEnabled(Func<string, string?>? environment = null) =>
        string.Equals((environment ?? Environment.GetEnvironmentVariable)("RAY_AUTH_MODE")?.Trim(), "token", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The token from the environment: <c>RAY_AUTH_TOKEN</c> or <c>RAY_AUTH_TOKEN_PATH</c> always (they are
    /// explicit), <c>~/.ray/auth_token</c> only when <paramref name="includeDefaultFile"/>. Null when none is set.
    /// </summary>
    /// <exception cref="InvalidOperationException"><c>RAY_AUTH_TOKEN_PATH</c> names a file that cannot be read or is empty (Ray fails the same way).</exception>
    public static string? FromEnvironment(bool includeDefaultFile, Func<string, string?>? environment = null)
    {
        var env = environment ?? Environment.GetEnvironmentVariable;
        var token = env("RAY_AUTH_TOKEN");
        if (!string.IsNullOrEmpty(token))
        {
            return Trim(token);
        }

        var path = env("RAY_AUTH_TOKEN_PATH");
        if (!string.IsNullOrEmpty(path))
        {
            return ReadFile(path) ?? throw new InvalidOperationException($"RAY_AUTH_TOKEN_PATH is set but the file cannot be opened or is empty: {path}");
        }

        return includeDefaultFile ? ReadFile(DefaultPath()) : null;
    }

    /// <summary><c>~/.ray/auth_token</c> (on Windows under <c>USERPROFILE</c>).</summary>
    public static string DefaultPath() =>
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) is { Length: > 0 } home ? home : ".", ".ray", "auth_token");

    /// <summary>The token in the first line of <paramref name="path"/>; null when it cannot be read or is blank.</summary>
    public static string? ReadFile(string path)
    {
        try
        {
            using var reader = new StreamReader(path);
            var line = reader.ReadLine();
            return line is null ? null : Trim(line) is { Length: > 0 } token ? token : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string Trim(string value) => value.Trim(' ', '\t', '\n', '\r', '\f', '\v');
}
