using System.Runtime.CompilerServices;

namespace RayClient.FunctionalTests.Infrastructure;

/// <summary>
/// The functional tests talk to their own loopback servers only. The tool and the Jobs client read
/// the process environment as for any user, where a developer's RAY_ADDRESS or RAY_API_SERVER_ADDRESS
/// would redirect them (Ray's rule: they win over --address), so those variables are removed from
/// this test process once, before any test runs. Tests that need them set them on a child process.
/// </summary>
internal static class TestEnvironment
{
    /// <summary>Variables that redirect or authenticate the tool's and the clients' requests.</summary>
    public static readonly string[] RayVariables =
        ["RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_JOB_HEADERS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"];

#pragma warning disable CA2255 // A test assembly's own process: cleared before any test reads it.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void ClearRayVariables()
    {
        foreach (var name in RayVariables)
        {
            Environment.SetEnvironmentVariable(name, null);
        }
    }
}
