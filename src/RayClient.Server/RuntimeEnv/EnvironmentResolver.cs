using System.Text.Json.Nodes;
using RayClient.Server.Storage;
using RayClient.Server.Workers;

namespace RayClient.Server.RuntimeEnv;

/// <summary>
/// Turns runtime envs (Ray's dict, URIs only) into the environment a worker runs in: the
/// working_dir and py_modules packages unpacked once from the KV store, env_vars, and a virtual
/// env for <c>pip</c>.
/// </summary>
internal sealed class EnvironmentResolver
{
    private readonly KvStore _kv;
    private readonly PackageCache _packages;
    private readonly VirtualEnvCache _venvs;

    public EnvironmentResolver(KvStore kv, string workDirectory, string python, LocalRayServerOptions options)
    {
        _kv = kv;
        _packages = new PackageCache(Path.Combine(workDirectory, "packages"), options.MaxPackageUnpackedSize, options.MaxPackageFiles);
        _venvs = new VirtualEnvCache(Path.Combine(workDirectory, "venvs"), python);
    }

    /// <summary>Turns a runtime env dict (URIs only) into a worker environment, unpacking packages once.</summary>
    public async Task<WorkerEnvironment> ResolveAsync(IReadOnlyDictionary<string, object?> runtimeEnv, CancellationToken cancellationToken)
    {
        if (runtimeEnv.Count == 0)
        {
            return WorkerEnvironment.Default;
        }

        string? workingDir = null;
        if (runtimeEnv.TryGetValue("working_dir", out var wd) && wd is string uri)
        {
            workingDir = await _packages.GetWorkingDirAsync(uri, FetchPackageAsync, cancellationToken).ConfigureAwait(false);
        }

        var sysPath = new List<string>();
        if (runtimeEnv.TryGetValue("py_modules", out var modules) && modules is System.Collections.IEnumerable list)
        {
            foreach (var module in list)
            {
                if (module is string moduleUri)
                {
                    sysPath.Add(await _packages.GetPyModuleSysPathAsync(moduleUri, FetchPackageAsync, cancellationToken).ConfigureAwait(false));
                }
            }
        }

        var envVars = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (runtimeEnv.TryGetValue("env_vars", out var vars) && vars is System.Collections.IDictionary dict)
        {
            foreach (System.Collections.DictionaryEntry entry in dict)
            {
                envVars[Convert.ToString(entry.Key, System.Globalization.CultureInfo.InvariantCulture)!] =
                    Convert.ToString(entry.Value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
            }
        }

        string? python = null;
        if (runtimeEnv.TryGetValue("pip", out var pip) && PipSpec(pip) is { Packages.Count: > 0 } spec)
        {
            var timeout = TimeSpan.FromSeconds(600);
            if (runtimeEnv.TryGetValue("config", out var config) && config is System.Collections.IDictionary cfg
                && cfg.Contains("setup_timeout_seconds") && cfg["setup_timeout_seconds"] is int seconds and > 0)
            {
                timeout = TimeSpan.FromSeconds(seconds);
            }

            python = await _venvs.GetPythonAsync(spec.Packages, spec.Check, timeout).ConfigureAwait(false);
        }

        var key = new JsonObject
        {
            ["workingDir"] = workingDir,
            ["sysPath"] = PythonValues.ToJsonNode(sysPath),
            ["envVars"] = PythonValues.ToJsonNode(envVars),
            ["python"] = python,
        }.ToJsonString();
        return new WorkerEnvironment(key, workingDir, sysPath, envVars, python);
    }

    /// <summary>Ray's pip field: a list of requirements, or {packages, pip_check, pip_version}.</summary>
    private static (List<string> Packages, bool Check)? PipSpec(object? pip)
    {
        static List<string> Strings(object? value) =>
            value is System.Collections.IEnumerable items and not string ? items.OfType<string>().ToList() : [];

        return pip switch
        {
            System.Collections.IDictionary dict => (Strings(dict.Contains("packages") ? dict["packages"] : null), dict.Contains("pip_check") && dict["pip_check"] is true),
            System.Collections.IEnumerable and not string => (Strings(pip), false),
            _ => null,
        };
    }

    /// <summary>Packages live in the KV store under their URI, default namespace (spec §8.6).</summary>
    private Task<byte[]?> FetchPackageAsync(string uri, CancellationToken cancellationToken) =>
        Task.FromResult(_kv.Get(System.Text.Encoding.UTF8.GetBytes(uri), null));
}
