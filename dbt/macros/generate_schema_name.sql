{#- Marts land in the warehouse's `main` schema under their own names; other layers in a schema
    named after the layer (`staging`, `intermediate`), not dbt's default `main_staging`. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
