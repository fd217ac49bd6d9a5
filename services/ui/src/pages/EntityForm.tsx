import { useMemo, useState } from "react";
import Form from "@rjsf/core";
import type { ErrorSchema, RJSFSchema } from "@rjsf/utils";
import { customizeValidator } from "@rjsf/validator-ajv8";
import Ajv04 from "ajv-draft-04";
import { ApiError } from "../api";
import { dataSchema, secretPaths, serverErrors, uiSchemaFor, withoutSecrets } from "../forms";

// The API's schemas are Draft 4 (as the server's jsonschema validates them): ajv-draft-04 checks data against
// them; the schemas themselves are not checked against the meta-schema (the engines' carry "required": [],
// which Draft 4's meta-schema refuses and the server accepts).
export const validator = customizeValidator({ AjvClass: Ajv04 as never, ajvOptionsOverrides: { strict: false, validateSchema: false } });

type Props = {
  schema: Record<string, unknown>; // an entity schema from /api/1/schema/... (or a plain one)
  data: Record<string, unknown>;
  creating: boolean;
  submitLabel: string;
  onSubmit: (data: Record<string, unknown>) => Promise<void>;
  onCancel?: () => void;
};

/** A form generated from the schema the API validates with; a refusal shown on the field it names. */
export default function EntityForm({ schema, data, creating, submitLabel, onSubmit, onCancel }: Props) {
  const formSchema = useMemo(() => dataSchema(schema), [schema]);
  const secrets = useMemo(() => secretPaths(formSchema as Record<string, unknown>), [formSchema]);
  const uiSchema = useMemo(() => ({
    ...uiSchemaFor(formSchema as Record<string, unknown>, creating),
    "ui:submitButtonOptions": { submitText: submitLabel },
  }), [formSchema, creating, submitLabel]);
  const [formData, setFormData] = useState<Record<string, unknown>>(() => withoutSecrets(data, secrets));
  const [extraErrors, setExtraErrors] = useState<ErrorSchema | undefined>();
  const [busy, setBusy] = useState(false);

  return (
    <div className="entity-form">
      <Form
        schema={formSchema as RJSFSchema}
        uiSchema={uiSchema}
        formData={formData}
        validator={validator}
        extraErrors={extraErrors}
        showErrorList="top"
        disabled={busy}
        noHtml5Validate
        onError={() => undefined /* shown on the fields; rjsf's default logs to the console */}
        onChange={(e) => setFormData(e.formData as Record<string, unknown>)}
        onSubmit={async (e) => {
          setBusy(true);
          setExtraErrors(undefined);
          try {
            await onSubmit(e.formData as Record<string, unknown>);
          } catch (err) {
            const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
            setExtraErrors(serverErrors(message, formSchema as Record<string, unknown>).errors);
          } finally {
            setBusy(false);
          }
        }}
      />
      {onCancel && <button type="button" onClick={onCancel}>Cancel</button>}
    </div>
  );
}
