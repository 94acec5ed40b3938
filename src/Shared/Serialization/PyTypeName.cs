using System.Collections;

namespace RayClient.Serialization;

// Shared source (src/Shared): the client's messages and the embedded server's both name Python types this way.

/// <summary>The Python type name of an unpickled value, for error messages (e.g. <c>list</c>, <c>mymod.Point object</c>).</summary>
internal static class PyTypeName
{
    public static string Of(object? value) => value switch
    {
        null => "None",
        bool => "bool",
        int or long or System.Numerics.BigInteger or byte or sbyte or short or ushort or uint or ulong => "int",
        double or float => "float",
        string => "str",
        byte[] => "bytes",
        List<object?> => "list",
        PyTuple => "tuple",
        IDictionary => "dict",
        HashSet<object?> => "set",
        decimal => "decimal.Decimal",
        System.Numerics.Complex => "complex",
        PyGlobal g => $"global {g}",
        PyObject { Class: { } cls } => $"{cls} object",
        PyObject => "object",
        PickleStub => "PickleStub",
        Array => "array.array",
        _ => value.GetType().ToString(),
    };
}
