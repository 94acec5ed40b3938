using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

/// <summary>
/// The <c>pip</c> field of a <see cref="RuntimeEnv"/>: packages installed into a virtualenv on the
/// cluster. Either a list of requirement specifiers or a local <c>requirements.txt</c> that is read
/// on this machine when the env is validated (as Ray's client does).
/// </summary>
public sealed class RuntimeEnvPip
{
    /// <summary>Requirement specifiers, e.g. <c>requests==2.31.0</c>. Default: null.</summary>
    public IReadOnlyList<string>? Packages { get; init; }

    /// <summary>
    /// Path of a local requirements file, read (trimmed, split on newlines) by
    /// <see cref="RuntimeEnv.Validate"/>. Exclusive with <see cref="Packages"/>. Default: null.
    /// </summary>
    public string? RequirementsFile { get; init; }

    /// <summary>Run <c>pip check</c> after installing. Default: false.</summary>
    public bool PipCheck { get; init; }

    /// <summary>Version spec of pip itself, e.g. <c>==23.3.1</c>. Default: null (the cluster's pip).</summary>
    public string? PipVersion { get; init; }

    /// <summary>Options for <c>pip install</c>. Default: null (the cluster's defaults).</summary>
    public IReadOnlyList<string>? PipInstallOptions { get; init; }

    /// <summary>Installs these requirement specifiers.</summary>
    public static RuntimeEnvPip FromPackages(params string[] packages)
    {
        ArgumentNullException.ThrowIfNull(packages);
        return new RuntimeEnvPip { Packages = [.. packages] };
    }

    /// <summary>Installs what a local requirements file lists (read on this machine).</summary>
    public static RuntimeEnvPip FromRequirementsFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new RuntimeEnvPip { RequirementsFile = path };
    }

    /// <summary>Ray's <c>parse_and_validate_pip</c>, type checks only (the file is read by <see cref="Normalize"/>).</summary>
    internal static RuntimeEnvPip Parse(JsonNode node)
    {
        if (RuntimeEnvJson.IsString(node))
        {
            return new RuntimeEnvPip { RequirementsFile = node.GetValue<string>() };
        }

        if (node is JsonArray)
        {
            return new RuntimeEnvPip { Packages = RuntimeEnvJson.ReadStringList(node, "pip", "of type str or List[str]") };
        }

        if (node is not JsonObject obj)
        {
            throw new RayRuntimeEnvException($"runtime_env['pip'] must be of type str, List[str] or dict, got {RuntimeEnvJson.PyType(node)}.");
        }

        var unknown = obj.Select(p => p.Key).Where(k => k is not ("packages" or "pip_check" or "pip_install_options" or "pip_version")).ToList();
        if (unknown.Count > 0)
        {
            throw new RayRuntimeEnvException(
                $"runtime_env['pip'] can only have these fields: packages, pip_check, pip_install_options and pip_version, but got: {string.Join(", ", obj.Select(p => p.Key))}.");
        }

        if (!obj.TryGetPropertyValue("packages", out var packages) || packages is null)
        {
            throw new RayRuntimeEnvException("runtime_env['pip'] must include field 'packages'.");
        }

        return new RuntimeEnvPip
        {
            Packages = RuntimeEnvJson.IsString(packages) ? null : RuntimeEnvJson.ReadStringList(packages, "pip']['packages", "of type str or list"),
            RequirementsFile = RuntimeEnvJson.IsString(packages) ? packages.GetValue<string>() : null,
            PipCheck = obj["pip_check"] is { } check && RuntimeEnvJson.ReadBool(check, "pip']['pip_check"),
            PipVersion = obj["pip_version"] is { } version ? RuntimeEnvJson.ReadString(version, "pip']['pip_version") : null,
            PipInstallOptions = obj["pip_install_options"] is { } options ? RuntimeEnvJson.ReadStringList(options, "pip']['pip_install_options") : null,
        };
    }

    /// <summary>Ray's normalised dict form: <c>{packages, pip_check[, pip_version][, pip_install_options]}</c>.</summary>
    internal JsonNode ToJson()
    {
        if (Packages is null && RequirementsFile is not null && !PipCheck && PipVersion is null && PipInstallOptions is null)
        {
            return JsonValue.Create(RequirementsFile);
        }

        var obj = new JsonObject
        {
            ["packages"] = Packages is not null ? RuntimeEnvJson.ToArray(Packages) : JsonValue.Create(RequirementsFile),
            ["pip_check"] = PipCheck,
        };
        if (PipVersion is not null)
        {
            obj["pip_version"] = PipVersion;
        }

        if (PipInstallOptions is not null)
        {
            obj["pip_install_options"] = RuntimeEnvJson.ToArray(PipInstallOptions);
        }

        return obj;
    }

    /// <summary>Reads the requirements file, drops duplicates (first wins); null when nothing is left, as Ray drops the field.</summary>
    internal RuntimeEnvPip? Normalize()
    {
        var packages = RequirementsFiles.Resolve(Packages, RequirementsFile, "pip");
        if (packages.Count == 0)
        {
            return null;
        }

        RequirementsFiles.CheckStrings(PipInstallOptions, "pip']['pip_install_options");
        return new RuntimeEnvPip
        {
            Packages = packages,
            PipCheck = PipCheck,
            PipVersion = PipVersion,
            PipInstallOptions = PipInstallOptions is null ? null : [.. PipInstallOptions],
        };
    }
}
