using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

/// <summary>
/// The <c>conda</c> field of a <see cref="RuntimeEnv"/>: an existing environment on the cluster
/// (name or absolute path), an environment given inline, or a local <c>environment.yml</c> that
/// is read on this machine when the env is validated (as Ray's client does).
/// </summary>
public sealed class RuntimeEnvConda
{
    private RuntimeEnvConda(string? envName, string? environmentFile, JsonObject? environment)
    {
        EnvName = envName;
        EnvironmentFile = environmentFile;
        Environment = environment;
    }

    /// <summary>Name (or absolute path) of a conda environment that exists on every node, or null.</summary>
    public string? EnvName { get; }

    /// <summary>Local <c>.yml</c>/<c>.yaml</c> file to read at validation, or null.</summary>
    public string? EnvironmentFile { get; }

    /// <summary>The environment as a dict (the YAML's content), or null.</summary>
    public JsonObject? Environment { get; }

    /// <summary>Uses an environment that already exists on the cluster's nodes.</summary>
    public static RuntimeEnvConda FromEnvName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new RuntimeEnvConda(name, null, null);
    }

    /// <summary>Creates the environment described by a local <c>environment.yml</c>.</summary>
    public static RuntimeEnvConda FromEnvironmentFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new RuntimeEnvConda(null, path, null);
    }

    /// <summary>Creates the environment described by this dict (e.g. <c>{"dependencies": ["pip", {"pip": ["requests"]}]}</c>).</summary>
    public static RuntimeEnvConda FromEnvironment(JsonObject environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        return new RuntimeEnvConda(null, null, (JsonObject)environment.DeepClone());
    }

    /// <summary>Ray's <c>parse_and_validate_conda</c> without reading: a string ending in .yaml/.yml is a file.</summary>
    internal static RuntimeEnvConda Parse(JsonNode node)
    {
        if (RuntimeEnvJson.IsString(node))
        {
            var text = node.GetValue<string>();
            var extension = Path.GetExtension(text);
            return extension is ".yaml" or ".yml" ? new RuntimeEnvConda(null, text, null) : new RuntimeEnvConda(text, null, null);
        }

        if (node is JsonObject obj)
        {
            return new RuntimeEnvConda(null, null, (JsonObject)obj.DeepClone());
        }

        throw new RayRuntimeEnvException($"runtime_env['conda'] must be of type str or dict, got {RuntimeEnvJson.PyType(node)}.");
    }

    internal JsonNode ToJson() =>
        Environment is not null ? Environment.DeepClone() : JsonValue.Create(EnvName ?? EnvironmentFile)!;

    /// <summary>Reads a YAML file into the dict form.</summary>
    internal RuntimeEnvConda Normalize()
    {
        if (EnvironmentFile is null)
        {
            return this;
        }

        if (!File.Exists(EnvironmentFile))
        {
            throw new RayRuntimeEnvException($"runtime_env['conda']: can't find conda YAML file {EnvironmentFile}.");
        }

        try
        {
            var parsed = PyYaml.SafeLoad(File.ReadAllText(EnvironmentFile));
            if (parsed is not JsonObject environment)
            {
                throw new RayRuntimeEnvException($"runtime_env['conda']: {EnvironmentFile} must hold a mapping, got {RuntimeEnvJson.PyType(parsed)}.");
            }

            return new RuntimeEnvConda(null, null, environment);
        }
        catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
        {
            throw new RayRuntimeEnvException($"runtime_env['conda']: failed to read conda file {EnvironmentFile}: {e.Message}", e);
        }
    }
}
