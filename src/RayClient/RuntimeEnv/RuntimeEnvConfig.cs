using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

/// <summary>The <c>config</c> field of a <see cref="RuntimeEnv"/> (Ray's <c>RuntimeEnvConfig</c>).</summary>
public sealed class RuntimeEnvConfig
{
    /// <summary>Ray's default setup timeout: 600 seconds.</summary>
    public const int DefaultSetupTimeoutSeconds = 600;

    /// <summary>
    /// How long the cluster may take to set the env up, in seconds; above 0, or -1 for no limit.
    /// Default: 600.
    /// </summary>
    public int SetupTimeoutSeconds { get; init; } = DefaultSetupTimeoutSeconds;

    /// <summary>Install the env on every node when the job starts rather than at first use. Default: true.</summary>
    public bool EagerInstall { get; init; } = true;

    /// <summary>Log files the cluster shows when setup fails (newer Ray). Default: null (not sent).</summary>
    public IReadOnlyList<string>? LogFiles { get; init; }

    /// <summary>Ray's <c>RuntimeEnvConfig.parse_and_validate_runtime_env_config</c>; unknown keys are dropped as in newest Ray.</summary>
    internal static RuntimeEnvConfig Parse(JsonNode node)
    {
        if (node is not JsonObject obj)
        {
            throw new RayRuntimeEnvException($"runtime_env['config'] must be of type dict, got {RuntimeEnvJson.PyType(node)}.");
        }

        var config = new RuntimeEnvConfig
        {
            SetupTimeoutSeconds = obj["setup_timeout_seconds"] is { } timeout
                ? RuntimeEnvJson.ReadInt(timeout, "config']['setup_timeout_seconds")
                : DefaultSetupTimeoutSeconds,
            EagerInstall = obj["eager_install"] is not { } eager || RuntimeEnvJson.ReadBool(eager, "config']['eager_install"),
            LogFiles = obj["log_files"] is { } logFiles ? RuntimeEnvJson.ReadStringList(logFiles, "config']['log_files") : null,
        };
        config.Check();
        return config;
    }

    internal void Check()
    {
        if (SetupTimeoutSeconds <= 0 && SetupTimeoutSeconds != -1)
        {
            throw new RayRuntimeEnvException(
                $"runtime_env['config']['setup_timeout_seconds'] must be greater than 0 or equal to -1, got: {SetupTimeoutSeconds}.");
        }

        RequirementsFiles.CheckStrings(LogFiles, "config']['log_files");
    }

    /// <summary>The dict with defaults filled in; <c>log_files</c> only when set (older Ray rejects the key).</summary>
    internal JsonObject ToJson()
    {
        var obj = new JsonObject
        {
            ["setup_timeout_seconds"] = SetupTimeoutSeconds,
            ["eager_install"] = EagerInstall,
        };
        if (LogFiles is not null)
        {
            obj["log_files"] = RuntimeEnvJson.ToArray(LogFiles);
        }

        return obj;
    }
}
