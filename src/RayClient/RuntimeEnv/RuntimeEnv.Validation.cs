using System.Text.Json;
using System.Text.Json.Nodes;
using RayClient.Packaging;

namespace RayClient;

public sealed partial class RuntimeEnv
{
    /// <summary>
    /// Checks the env as Ray does and returns its normalised form: requirements and conda YAML
    /// files are read (on this machine), pip/uv duplicates are removed, and empty <c>pip</c>,
    /// <c>uv</c>, <c>env_vars</c> and <c>excludes</c> are dropped. Local <see cref="WorkingDir"/> and
    /// <see cref="PyModules"/> entries must exist. Idempotent.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">A rule is broken; the message names the field.</exception>
    public RuntimeEnv Validate()
    {
        if (IsValidated)
        {
            return this;
        }

        if (WorkingDir is not null)
        {
            ValidateWorkingDir(WorkingDir);
        }

        if (PyModules is not null)
        {
            foreach (var module in PyModules)
            {
                ValidatePyModule(module);
            }
        }

        RequirementsFiles.CheckStrings(Excludes, "excludes");
        RequirementsFiles.CheckStrings(JavaJars, "java_jars");
        if (EnvVars is not null && EnvVars.Any(p => p.Key is null || p.Value is null))
        {
            throw new RayRuntimeEnvException("runtime_env['env_vars'] must be of type Dict[str, str], got a null key or value.");
        }

        var pip = Pip?.Normalize();
        var uv = Uv?.Normalize();
        var conda = Conda?.Normalize();
        var present = new List<string>(3);
        if (pip is not null)
        {
            present.Add("pip");
        }

        if (uv is not null)
        {
            present.Add("uv");
        }

        if (conda is not null)
        {
            present.Add("conda");
        }

        if (present.Count > 1)
        {
            throw new RayRuntimeEnvException(
                $"The {string.Join(" and ", present.Select(f => $"'{f}'"))} fields of runtime_env cannot both be specified. " +
                "To use pip with conda, list the pip packages in the conda environment's \"pip\" dependency.");
        }

        Config?.Check();
        ValidateNsight(Nsight);
        if (PyExecutable is not null)
        {
            ValidatePyExecutable(PyExecutable);
        }

        var normalized = new RuntimeEnv
        {
            WorkingDir = WorkingDir,
            PyModules = PyModules is null ? null : [.. PyModules],
            Pip = pip,
            Uv = uv,
            Conda = conda,
            EnvVars = EnvVars is null || EnvVars.Count == 0 ? null : new Dictionary<string, string>(EnvVars, StringComparer.Ordinal),
            Excludes = Excludes is null || Excludes.Count == 0 ? null : [.. Excludes],
            Config = Config,
            Container = Container is null ? null : (JsonObject)Container.DeepClone(),
            ImageUri = ImageUri,
            JavaJars = JavaJars is null ? null : [.. JavaJars],
            WorkerProcessSetupHook = WorkerProcessSetupHook,
            PyExecutable = PyExecutable,
            Nsight = Nsight?.DeepClone(),
            Plugins = Plugins,
            IsValidated = true,
        };

        // Ray checks these against the keys given (runtime_env.py :: RuntimeEnv.__init__).
        CheckExclusive(normalized, "container", Container is not null);
        CheckExclusive(normalized, "image_uri", ImageUri is not null);
        return normalized;
    }

    /// <summary>
    /// Ray's <c>_validate_no_local_paths</c>: after upload, or for a task/actor env (local
    /// directories can only be uploaded for the job), working_dir and py_modules must be URIs.
    /// </summary>
    /// <exception cref="RayRuntimeEnvException">A local path is left.</exception>
    internal RuntimeEnv EnsureNoLocalPaths()
    {
        if (WorkingDir is not null && !RuntimeEnvUris.IsUri(WorkingDir))
        {
            throw LocalPathNotAllowed("working_dir", WorkingDir);
        }

        foreach (var module in PyModules ?? [])
        {
            if (!RuntimeEnvUris.IsUri(module))
            {
                throw LocalPathNotAllowed("py_modules", module);
            }
        }

        return this;
    }

    private static RayRuntimeEnvException LocalPathNotAllowed(string field, string path) =>
        new($"runtime_env['{field}']: {path} is not a valid URI. Passing directories or modules to be dynamically uploaded " +
            "is only supported at the job level (the session's runtime env).");

    private static void ValidateWorkingDir(string workingDir)
    {
        if (RuntimeEnvUris.IsUri(workingDir))
        {
            RuntimeEnvUris.ValidateUri(workingDir, "working_dir");
            return;
        }

        if (workingDir.Length == 0)
        {
            throw new RayRuntimeEnvException("runtime_env['working_dir'] must not be empty.");
        }

        if (Directory.Exists(workingDir))
        {
            return;
        }

        if (File.Exists(workingDir) && Path.GetExtension(workingDir) == ".zip")
        {
            return;
        }

        throw new RayRuntimeEnvException(
            $"runtime_env['working_dir']: directory {Path.GetFullPath(workingDir)} must be an existing directory or a zip package.");
    }

    private static void ValidatePyModule(string module)
    {
        if (module is null)
        {
            throw new RayRuntimeEnvException("runtime_env['py_modules'] must be a list of strings, got a null element.");
        }

        if (RuntimeEnvUris.IsUri(module))
        {
            RuntimeEnvUris.ValidateUri(module, "py_modules");
            return;
        }

        if (Directory.Exists(module))
        {
            return;
        }

        var extension = Path.GetExtension(module);
        if (File.Exists(module) && extension is ".py" or ".whl")
        {
            return;
        }

        throw new RayRuntimeEnvException(
            $"runtime_env['py_modules']: entry must be an existing directory, a .py file, a .whl file or a URI, got {module}.");
    }

    private static void ValidateNsight(JsonNode? nsight)
    {
        if (nsight is null || nsight is JsonObject)
        {
            return;
        }

        if (nsight.GetValueKind() == JsonValueKind.String && nsight.GetValue<string>() == "default")
        {
            return;
        }

        throw new RayRuntimeEnvException(
            $"runtime_env['_nsight']: unsupported nsight config {nsight.ToJsonString()}; use \"default\" or a dict of Nsight options.");
    }

    private static void ValidatePyExecutable(string pyExecutable)
    {
        var parts = pyExecutable.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new RayRuntimeEnvException("runtime_env['py_executable'] must be a non-empty string.");
        }

        if (parts.Length == 2 && Path.GetFileName(parts[0]) == "uv" && parts[1] == "run")
        {
            throw new RayRuntimeEnvException(
                "runtime_env['py_executable'] must not be a bare 'uv run': give the arguments too (e.g. 'uv run --project <dir>'), " +
                "or leave py_executable unset.");
        }
    }

    private static void CheckExclusive(RuntimeEnv env, string field, bool isSet)
    {
        if (!isSet)
        {
            return;
        }

        var others = env.ToJsonObject().Select(p => p.Key).Where(k => k != field && k is not ("config" or "env_vars")).ToList();
        if (others.Count > 0)
        {
            throw new RayRuntimeEnvException(
                $"The '{field}' field currently cannot be used together with other fields of runtime_env " +
                $"(only 'config' and 'env_vars' are allowed with it). Specified fields: {string.Join(", ", others)}.");
        }
    }
}
