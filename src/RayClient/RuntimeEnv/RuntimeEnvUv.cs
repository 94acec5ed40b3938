using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

/// <summary>
/// The <c>uv</c> field of a <see cref="RuntimeEnv"/> (newer Ray): packages installed with uv.
/// Either a list of requirement specifiers or a local requirements file read on this machine.
/// </summary>
public sealed class RuntimeEnvUv
{
    /// <summary>Requirement specifiers. Default: null.</summary>
    public IReadOnlyList<string>? Packages { get; init; }

    /// <summary>Path of a local requirements file, read by <see cref="RuntimeEnv.Validate"/>. Default: null.</summary>
    public string? RequirementsFile { get; init; }

    /// <summary>Run a pip check after installing. Default: false.</summary>
    public bool UvCheck { get; init; }

    /// <summary>Version spec of uv itself. Default: null.</summary>
    public string? UvVersion { get; init; }

    /// <summary>Options for <c>uv pip install</c>. Default: null (the cluster uses <c>["--no-cache"]</c>).</summary>
    public IReadOnlyList<string>? UvPipInstallOptions { get; init; }

    /// <summary>Installs these requirement specifiers.</summary>
    public static RuntimeEnvUv FromPackages(params string[] packages)
    {
        ArgumentNullException.ThrowIfNull(packages);
        return new RuntimeEnvUv { Packages = [.. packages] };
    }

    /// <summary>Installs what a local requirements file lists (read on this machine).</summary>
    public static RuntimeEnvUv FromRequirementsFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new RuntimeEnvUv { RequirementsFile = path };
    }

    /// <summary>Ray's <c>parse_and_validate_uv</c>, type checks only.</summary>
    internal static RuntimeEnvUv Parse(JsonNode node)
    {
        if (RuntimeEnvJson.IsString(node))
        {
            return new RuntimeEnvUv { RequirementsFile = node.GetValue<string>() };
        }

        if (node is JsonArray)
        {
            return new RuntimeEnvUv { Packages = RuntimeEnvJson.ReadStringList(node, "uv", "of type str or List[str]") };
        }

        if (node is not JsonObject obj)
        {
            throw new RayRuntimeEnvException($"runtime_env['uv'] must be of type str, List[str] or dict, got {RuntimeEnvJson.PyType(node)}.");
        }

        if (obj.Any(p => p.Key is not ("packages" or "uv_version" or "uv_check" or "uv_pip_install_options")))
        {
            throw new RayRuntimeEnvException(
                $"runtime_env['uv'] can only have these fields: packages, uv_version, uv_check and uv_pip_install_options, but got: {string.Join(", ", obj.Select(p => p.Key))}.");
        }

        if (!obj.TryGetPropertyValue("packages", out var packages) || packages is null)
        {
            throw new RayRuntimeEnvException("runtime_env['uv'] must include field 'packages'.");
        }

        return new RuntimeEnvUv
        {
            Packages = RuntimeEnvJson.ReadStringList(packages, "uv']['packages", "of type list"),
            UvCheck = obj["uv_check"] is { } check && RuntimeEnvJson.ReadBool(check, "uv']['uv_check"),
            UvVersion = obj["uv_version"] is { } version ? RuntimeEnvJson.ReadString(version, "uv']['uv_version") : null,
            UvPipInstallOptions = obj["uv_pip_install_options"] is { } options
                ? RuntimeEnvJson.ReadStringList(options, "uv']['uv_pip_install_options")
                : null,
        };
    }

    /// <summary>Ray's dict form: <c>{packages, uv_check[, uv_version][, uv_pip_install_options]}</c>.</summary>
    internal JsonNode ToJson()
    {
        if (Packages is null && RequirementsFile is not null && !UvCheck && UvVersion is null && UvPipInstallOptions is null)
        {
            return JsonValue.Create(RequirementsFile);
        }

        var obj = new JsonObject
        {
            ["packages"] = Packages is not null ? RuntimeEnvJson.ToArray(Packages) : JsonValue.Create(RequirementsFile),
            ["uv_check"] = UvCheck,
        };
        if (UvVersion is not null)
        {
            obj["uv_version"] = UvVersion;
        }

        if (UvPipInstallOptions is not null)
        {
            obj["uv_pip_install_options"] = RuntimeEnvJson.ToArray(UvPipInstallOptions);
        }

        return obj;
    }

    /// <summary>Reads the requirements file and drops duplicates; null when nothing is left.</summary>
    internal RuntimeEnvUv? Normalize()
    {
        var packages = RequirementsFiles.Resolve(Packages, RequirementsFile, "uv");
        if (packages.Count == 0)
        {
            return null;
        }

        RequirementsFiles.CheckStrings(UvPipInstallOptions, "uv']['uv_pip_install_options");
        return new RuntimeEnvUv
        {
            Packages = packages,
            UvCheck = UvCheck,
            UvVersion = UvVersion,
            UvPipInstallOptions = UvPipInstallOptions is null ? null : [.. UvPipInstallOptions],
        };
    }
}
